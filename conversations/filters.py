"""Query filters written so that both MongoDB and the embedded server answer them from an index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from conversations.models import epoch_ms, stored


def exactly(**fields: Any) -> dict[str, Any]:
    """Equality on scalar fields, written ``{field: {"$eq": value}}``.

    The embedded server compiles a bare ``{field: value}`` to "equals, or is an array that
    contains", an OR that no index can serve unless some index's *name* ends in that field, so a
    compound index led by ``account_id`` or ``contact_id`` went unused and every such query read the
    whole collection. ``$eq`` compiles to a plain comparison that the compound indexes serve; on
    MongoDB the two are the same query. Only for scalar fields: on an array field (``teams``) the
    embedded server's ``$eq`` would no longer match an element.
    """
    return {name: {"$eq": stored(value)} for name, value in fields.items()}


def one_of(field: str, values: Iterable[Any]) -> dict[str, Any]:
    """A scalar ``field`` equal to any of ``values`` (``None``: null or missing), to merge into a
    filter beside other fields.

    Written ``{"$and": [{"$or": [{field: {"$eq": v}}, …]}]}`` for the embedded server, which
    answers ``$in`` inside ``find_one_and_update`` by reading every match in Python, and joins a
    bare top-level ``$or`` to the other conditions of a ``find_one_and_update`` without brackets
    (``a AND b AND c OR d``: documents of any account would match ``d``). Inside ``$and`` it is
    bracketed. On MongoDB it is the same query as ``{field: {"$in": values}}``.
    """
    return {"$and": [{"$or": [{field: {"$eq": stored(value)}} for value in values]}]}


async def newest_page(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    field: str,
    limit: int,
    before: datetime | None,
    before_id: str | None,
    oldest: bool = False,
) -> list[dict[str, Any]]:
    """A page of ``query``'s records, newest ``field`` first and by id among records of the same
    time, after the previous page's last one: older than ``before``, or as old with a lower id than
    ``before_id`` (the time alone skips the rest of a millisecond's records — busy traffic writes
    several — when a page ends among them). Two queries rather than one ``$or``, which the
    embedded server answers by reading the whole collection. ``oldest``: the other way round,
    oldest first and the next page newer than ``before``."""
    way = ASCENDING if oldest else DESCENDING
    order = [(field, way), ("_id", way)]
    if before is None:
        return await collection.find(query).sort(order).limit(limit).to_list()
    at = epoch_ms(before)
    docs: list[dict[str, Any]] = []
    if before_id is not None:  # the embedded server reads every document for a range on _id: filtered here
        same_time = await collection.find({**query, field: {"$eq": at}}).to_list()
        later = (d for d in same_time if (str(d["_id"]) > before_id if oldest else str(d["_id"]) < before_id))
        docs = sorted(later, key=lambda d: str(d["_id"]), reverse=not oldest)[:limit]
    if len(docs) < limit:
        beyond = {"$gt": at} if oldest else {"$lt": at}
        docs += await collection.find({**query, field: beyond}).sort(order).limit(limit - len(docs)).to_list()
    return docs
