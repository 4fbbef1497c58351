"""The store's errors, and the decorator that turns driver outages into ``StoreUnavailable``: what
callers outside ``conversations/`` catch instead of the driver's exceptions.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from pymongo.errors import ConnectionFailure, InvalidOperation, WriteConcernError

P = ParamSpec("P")
R = TypeVar("R")


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; the caller should answer 503 and let the sender retry."""


class StoreClosed(StoreError):
    """The store was closed (the process is stopping): background loops end."""


def translating_outages(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the driver's connection failures, and a write a replica set did not confirm durably (a
    write concern error: it may be rolled back), into ``StoreUnavailable`` at the store's edge."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except ConnectionFailure as exc:
            raise StoreUnavailable(f"store unreachable: {type(exc).__name__}") from exc
        except WriteConcernError as exc:
            raise StoreUnavailable(f"the store did not confirm the write durably: {exc}") from exc
        except InvalidOperation as exc:
            if "after close" in str(exc):
                raise StoreClosed("the store was closed") from exc
            raise

    return wrapper


class ChangeStreamFailed(StoreError):
    """Following the store's change stream failed (the server has none, or it broke off): read by
    polling instead. ``cause`` names the driver's error."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"the change stream failed: {cause}")
        self.cause = cause
