"""The store's errors, and the decorator that turns driver outages into ``StoreUnavailable``: what
callers outside ``conversations/`` catch instead of the driver's exceptions.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from pymongo.errors import BulkWriteError, ConnectionFailure, InvalidOperation, OperationFailure, WriteConcernError

P = ParamSpec("P")
R = TypeVar("R")


# the server's codes MongoDB's retryable reads and writes specification calls transient, as PyMongo
# lists them: a primary gone or stepping down (which PyMongo raises as NotPrimaryError, a
# ConnectionFailure, for a whole command; here for one write of a bulk), a mongos that could not
# reach a shard (6, 7, 89, 9001), a time limit (262), a read concern not ready yet (134)
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; the caller should answer 503 and let the sender retry."""


class StoreClosed(StoreError):
    """The store was closed (the process is stopping): background loops end."""


def translating_outages(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the driver's connection failures, writes a replica set did not confirm durably (a
    write concern error: they may be rolled back), and a server error MongoDB calls transient (a
    ``RetryableWriteError`` label or a code of ``TRANSIENT_CODES``, still failing after the
    driver's own retry; a bulk whose every write error is such) into ``StoreUnavailable`` at the
    store's edge: the caller answers 503 or tries again, as for an outage."""

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
        except BulkWriteError as exc:  # what a repository lets through of a bulk's errors
            if exc.details.get("writeConcernErrors"):
                raise StoreUnavailable("the store did not confirm the writes durably") from exc
            errors = exc.details.get("writeErrors") or []
            if errors and all(error.get("code") in TRANSIENT_CODES for error in errors):
                raise StoreUnavailable(f"the store failed for now: {errors[0].get('errmsg', '')}") from exc
            raise
        except OperationFailure as exc:
            if is_transient(exc):
                raise StoreUnavailable(f"the store failed for now: {exc}") from exc
            raise

    return wrapper


def is_transient(exc: OperationFailure) -> bool:
    """Whether the server says the command may succeed if sent again."""
    return exc.has_error_label("RetryableWriteError") or exc.code in TRANSIENT_CODES


class ChangeStreamFailed(StoreError):
    """Following the store's change stream failed (the server has none, or it broke off): read by
    polling instead. ``cause`` names the driver's error."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"the change stream failed: {cause}")
        self.cause = cause
