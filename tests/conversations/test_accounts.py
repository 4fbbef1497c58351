"""Tenant store operations on the embedded store: which accounts auto-assign (a nested field and a
boolean written by ``$set``, both of which the embedded server must match like MongoDB)."""

from __future__ import annotations

from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.sealing import Sealer, parse_key
from conversations.tenant_models import Account
from tests.conftest import TEST_SECRET_KEY


async def test_the_accounts_that_assign_automatically(store: Repositories) -> None:
    for account_id, routing in [
        ("a", {"strategy": "auto"}),
        ("b", {"strategy": "manual"}),
        ("c", None),
        ("d", {"strategy": "auto"}),
    ]:
        assert await store.accounts.create_account(
            Account(id=account_id, name=account_id, created_at=utcnow(), routing=routing)
        )
    await store.accounts.update_account("d", disabled=True)
    assert sorted(await store.accounts.auto_assigning_accounts(by_default=False)) == ["a"]
    assert sorted(await store.accounts.auto_assigning_accounts(by_default=True)) == ["a", "c"]
    await store.accounts.update_account("d", disabled=False)
    assert sorted(await store.accounts.auto_assigning_accounts(by_default=False)) == ["a", "d"]
    account = await store.accounts.get_account("d")
    assert account is not None and account.disabled is False
    assert not await store.accounts.create_account(Account(id="a", name="again", created_at=utcnow()))


async def test_an_account_with_an_inbox_that_assigns_automatically_is_one_too(store: Repositories) -> None:
    store.client.use_sealer(Sealer(parse_key(TEST_SECRET_KEY)))  # an inbox's settings are sealed
    for account_id in ("manual", "off"):
        routing = {"strategy": "manual"}
        assert await store.accounts.create_account(Account(account_id, account_id, utcnow(), routing=routing))
        desk = await store.inboxes.create_inbox(account_id, "webchat", "Desk", {}, utcnow(), None, {"strategy": "auto"})
        assert desk is not None
        await store.inboxes.create_inbox(account_id, "webchat", "Other", {}, utcnow(), None, {"strategy": "next"})
    await store.accounts.update_account("off", disabled=True)
    assert await store.accounts.auto_assigning_accounts(by_default=False) == ["manual"]
    assert await store.accounts.auto_assigning_accounts(by_default=True) == ["manual"]
    assert sorted((await store.inboxes.inbox_strategies("manual")).values()) == ["auto", "next"]
