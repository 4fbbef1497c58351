"""Tenant store operations on the embedded store: which accounts auto-assign (a nested field and a
boolean written by ``$set``, both of which the embedded server must match like MongoDB)."""

from __future__ import annotations

from conversations.models import Account, utcnow
from conversations.store import Store


async def test_the_accounts_that_assign_automatically(store: Store) -> None:
    for account_id, routing in [("a", {"strategy": "auto"}), ("b", {"strategy": "manual"}), ("c", None),
                                ("d", {"strategy": "auto"})]:
        assert await store.create_account(Account(id=account_id, name=account_id, created_at=utcnow(), routing=routing))
    await store.update_account("d", disabled=True)
    assert sorted(await store.auto_assigning_accounts(by_default=False)) == ["a"]
    assert sorted(await store.auto_assigning_accounts(by_default=True)) == ["a", "c"]
    await store.update_account("d", disabled=False)
    assert sorted(await store.auto_assigning_accounts(by_default=False)) == ["a", "d"]
    account = await store.get_account("d")
    assert account is not None and account.disabled is False
    assert not await store.create_account(Account(id="a", name="again", created_at=utcnow()))
