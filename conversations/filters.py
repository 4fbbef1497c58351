"""Query filters written so that both MongoDB and the embedded server answer them from an index."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Mapping, Sequence
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
    split: bool = False,
) -> list[dict[str, Any]]:
    """A page of ``query``'s records, newest ``field`` first and by id among records of the same
    time, after the previous page's last one: older than ``before``, or as old with a lower id than
    ``before_id`` (the time alone skips the rest of a millisecond's records — busy traffic writes
    several — when a page ends among them). Two queries rather than one ``$or``, which the
    embedded server answers by reading the whole collection. ``oldest``: the other way round,
    oldest first and the next page newer than ``before``. ``split``: see :func:`find_sorted`."""
    way = ASCENDING if oldest else DESCENDING
    docs: list[dict[str, Any]] = []
    if before is not None:
        at = epoch_ms(before)
        if before_id is not None:  # the embedded server reads every document for a range on _id: filtered here
            same_time = await find_sorted(collection, {**query, field: {"$eq": at}}, None, None, split=split)
            later = (d for d in same_time if (str(d["_id"]) > before_id if oldest else str(d["_id"]) < before_id))
            docs = sorted(later, key=lambda d: str(d["_id"]), reverse=not oldest)[:limit]
        query = {**query, field: {"$gt": at} if oldest else {"$lt": at}}
    if len(docs) < limit:
        docs += await _by_time_then_id(collection, query, field, way, limit - len(docs), split)
    return docs


async def _by_time_then_id(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], field: str, way: int, limit: int, split: bool
) -> list[dict[str, Any]]:
    """At most ``limit`` of ``query``'s records by ``field``, by id among those of the same time.
    The store sorts by the field alone: an index of (…, field) gives MongoDB that order, not the
    field's then the id's, which it would sort in memory over every match. The answer's last time
    may have more records than made it in: that time's records are read whole and sorted here."""
    found = await find_sorted(collection, query, [(field, way)], limit, split=split)
    if found and len(found) == limit:
        last = found[-1].get(field)
        found = [doc for doc in found if doc.get(field) != last]
        # the whole millisecond, unsorted: asked to sort it by _id, SQLite walks the _id index
        # through every document (a member's thread list: 5.7 ms at 10,000 messages, 33.9 at 100,000)
        found += await find_sorted(collection, {**query, field: {"$eq": last}}, None, None, split=split)
    found.sort(key=lambda doc: str(doc["_id"]), reverse=way == DESCENDING)
    found.sort(key=lambda doc: _sort_key(doc, field), reverse=way == DESCENDING)  # stable: ids stay in order
    return found[:limit]


async def find_sorted(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    order: Sequence[tuple[str, int]] | None,
    limit: int | None,
    skip: int = 0,
    projection: Mapping[str, Any] | None = None,
    split: bool = False,
) -> list[dict[str, Any]]:
    """``query``'s documents in ``order`` (``None``: any), from the ``skip``-th, at most ``limit``.

    ``split`` (asked on the embedded store): the query is asked as the plain queries of
    :func:`plain_parts`, at once, and their answers merged. The embedded server reads
    every document of the collection in Python for an ``$and`` of ``$or`` lists (an agent's
    inboxes, a list of statuses) and answers each plain query from an index; MongoDB gets the
    query as it is."""
    parts = plain_parts(query) if split else [query]
    if len(parts) == 1:
        cursor = collection.find(parts[0], projection)
        cursor = cursor.sort(list(order)) if order else cursor
        cursor = cursor.skip(skip) if skip else cursor
        return await (cursor.limit(limit) if limit is not None else cursor).to_list()
    most = None if limit is None else skip + limit
    if projection and order and all(v for k, v in projection.items() if k != "_id"):  # the fields merged on
        projection = {**projection, **{name: 1 for name, _ in order}}
    answers = await asyncio.gather(*(find_sorted(collection, part, order, most, 0, projection) for part in parts))
    by_id = {doc["_id"]: doc for answer in answers for doc in answer}  # the queries may overlap
    docs = list(by_id.values())
    for name, way in reversed(order or ()):  # a stable sort per key, the last key first
        docs.sort(key=lambda doc: _sort_key(doc, name), reverse=way == DESCENDING)
    return docs[skip:most]


def _sort_key(doc: Mapping[str, Any], name: str) -> tuple[int, Any]:
    """A field's value as MongoDB orders them: a missing or null one first, then numbers, strings,
    other values, dates (a time another tool wrote as a date sorts after every epoch-ms one,
    instead of failing the comparison)."""
    value: Any = doc
    for step in name.split("."):
        value = value.get(step) if isinstance(value, Mapping) else None
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (4, value.timestamp())
    return (3, str(value))


def named_fields(query: Mapping[str, Any]) -> set[str]:
    """Every field ``query`` names, inside its ``$and``, ``$or`` and ``$nor`` lists too."""
    names: set[str] = set()
    for name, condition in query.items():
        if name in ("$and", "$or", "$nor"):
            names.update(field for member in condition for field in named_fields(member))
        elif not name.startswith("$"):
            names.add(name)
    return names


_EMBEDDED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


async def is_embedded(client: Any) -> bool:
    """Whether ``client`` (an ``AsyncMongoClient``) talks to the embedded server, nx-27017,
    however it was reached: asked once per client (PyMongo compares clients by the servers they
    name, so clients of one server share the answer, which is theirs too)."""
    known = _EMBEDDED.get(client)
    if known is None:
        info = await client.admin.command("buildInfo")
        known = _EMBEDDED[client] = info.get("process") == "nx_27017"
    return known


async def find_all(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], order: Sequence[tuple[str, int]] | None = None
) -> list[dict[str, Any]]:
    """``query``'s documents in ``order``: :func:`find_sorted`, split on the embedded store."""
    return await find_sorted(collection, query, order, None, split=await is_embedded(collection.database.client))


async def delete_all(collection: AsyncCollection[dict[str, Any]], query: Mapping[str, Any]) -> int:
    """Delete ``query``'s documents (on the embedded store part by part); how many went."""
    parts = plain_parts(query) if await is_embedded(collection.database.client) else [dict(query)]
    return sum([(await collection.delete_many(part)).deleted_count for part in parts])


async def update_all(
    collection: AsyncCollection[dict[str, Any]], query: Mapping[str, Any], update: Mapping[str, Any]
) -> int:
    """Apply ``update`` to ``query``'s documents (on the embedded store part by part); how many
    changed. Parts may overlap, so only for an update that can be applied twice (a ``$set``, not
    an ``$inc``); a document two parts share is counted once when the update takes it out of the
    query (as an erasure's anonymisation does)."""
    parts = plain_parts(query) if await is_embedded(collection.database.client) else [dict(query)]
    return sum([(await collection.update_many(part, update)).modified_count for part in parts])


MOST_ALTERNATIVES = 64  # more plain queries than this: the query goes as it is
MOST_PARTS = 1000  # the same for plain_parts (an erasure's lookups by hundreds of ids)


def plain_parts(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``query`` as plain queries for the embedded server, which reads every document in Python
    for an ``$or`` and for an ``$in`` on a field other than ``_id``: each such ``$in`` asked one
    value at a time with ``$eq``, each ``$or`` multiplied out (:func:`alternatives`); the query as
    it is beyond ``MOST_PARTS`` queries. The parts may overlap."""
    pending, done = [dict(query)], []
    while pending:
        part = pending.pop()
        listed = next((name for name, condition in part.items() if _listed(name, condition)), None)
        if listed is not None:
            values = dict.fromkeys(part[listed]["$in"])  # an empty list: no part, as it matches nothing
            pending += [{**part, listed: {"$eq": value}} for value in values]
        elif (ored := _ors_in_and(part)) is not None and (expanded := alternatives(ored)) != [ored]:
            pending += expanded
        else:  # nothing left to split (or too much at once)
            done.append(part)
        if len(done) + len(pending) > MOST_PARTS:
            return [dict(query)]
    return done[::-1]


def _ors_in_and(query: Mapping[str, Any]) -> dict[str, Any] | None:
    """``query`` with its top-level ``$or`` written as a member of its ``$and``, where
    :func:`alternatives` looks for one; ``None`` if it has neither."""
    ors = query.get("$or")
    ands = list(query.get("$and") or ())
    if isinstance(ors, (list, tuple)):
        ands.append({"$or": list(ors)})
    elif "$or" in query or not ands:
        return None  # an $or that is not a list is left to the server as it is
    return {**{k: v for k, v in query.items() if k not in ("$or", "$and")}, "$and": ands}


def _listed(name: str, condition: Any) -> bool:
    """An ``$in`` list of scalars on a field other than ``_id`` (which the server reads by its id)."""
    return (
        name != "_id"
        and not name.startswith("$")
        and isinstance(condition, Mapping)
        and set(condition) == {"$in"}
        and isinstance(condition["$in"], (list, tuple))
        and all(isinstance(value, _SCALARS) for value in condition["$in"])
    )


def alternatives(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``query`` as plain queries whose answers together are its answer (conditions on scalar
    fields written with ``$eq``, as :func:`exactly` writes them, are merged): each member of its
    ``$and`` that is an ``$or`` list multiplied out with the rest (``{a, $and: [{$or: [b, c]}]}``
    is ``{a, b}`` and ``{a, c}``), an alternative that contradicts the rest left out (two
    different equalities of one field); ``[query]`` when there is nothing to split, or more than
    ``MOST_ALTERNATIVES`` queries would come of it. A condition that cannot be merged into a plain
    query stays in that query's own ``$and``. The queries may overlap: a caller merges by ``_id``."""
    members = list(query.get("$and") or ())
    if not any(_is_or(member) for member in members):
        return [dict(query)]
    parts: list[dict[str, Any]] = [{k: v for k, v in query.items() if k != "$and"}]
    for member in members:
        options = member["$or"] if _is_or(member) else [member]
        parts = [joined for part in parts for option in options if (joined := _conjoin(part, option)) is not None]
        if len(parts) > MOST_ALTERNATIVES:
            return [dict(query)]
    return parts


def _is_or(member: Any) -> bool:
    return isinstance(member, Mapping) and set(member) == {"$or"} and isinstance(member["$or"], (list, tuple))


def _conjoin(part: Mapping[str, Any], option: Mapping[str, Any]) -> dict[str, Any] | None:
    """``part`` and ``option`` as one plain query; ``None`` if they contradict each other."""
    joined = {**part, "$and": list(part["$and"])} if "$and" in part else dict(part)  # not another part's list
    for name, condition in option.items():
        if name.startswith("$"):  # an operator of its own: kept as it is
            joined.setdefault("$and", []).append({name: condition})
            continue
        if name not in joined or (type(joined[name]) is type(condition) and joined[name] == condition):
            joined[name] = condition
            continue
        mine, theirs = joined[name], condition
        equal, other = _equal_to(mine), _equal_to(theirs)
        if equal is not _NOT_EQUALITY and other is not _NOT_EQUALITY:
            if not _same(equal, other):
                return None  # two values of one field
            joined[name] = mine if isinstance(mine, Mapping) else theirs  # the $eq form
        elif equal is not _NOT_EQUALITY and _unequal_to(theirs) is not _NOT_EQUALITY:
            if _same(equal, _unequal_to(theirs)):
                return None  # "x" and "not x"
        elif other is not _NOT_EQUALITY and _unequal_to(mine) is not _NOT_EQUALITY:
            if _same(other, _unequal_to(mine)):
                return None
            joined[name] = theirs  # "not y" beside "x": the equality says it all
        else:
            joined.setdefault("$and", []).append({name: theirs})
    return joined


_NOT_EQUALITY = object()
_SCALARS = (str, int, float, bool, type(None))


def _equal_to(condition: Any) -> Any:
    """The value a condition asks a scalar field to equal (``{"$eq": x}``, ``filters.exactly``'s
    form), if it is one. A bare value is not taken for one: on an array field (``labels``) it
    matches an element, and two of them do not contradict each other."""
    if isinstance(condition, Mapping) and set(condition) == {"$eq"} and isinstance(condition["$eq"], _SCALARS):
        return condition["$eq"]
    return _NOT_EQUALITY


def _same(one: Any, other: Any) -> bool:
    return type(one) is type(other) and one == other  # True is not 1 here


def _unequal_to(condition: Any) -> Any:
    """The value a condition asks a field not to equal (``{"$ne": x}``), if it is one."""
    if isinstance(condition, Mapping) and set(condition) == {"$ne"} and isinstance(condition["$ne"], _SCALARS):
        return condition["$ne"]
    return _NOT_EQUALITY
