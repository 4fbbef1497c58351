"""Accounts in the console: the first-run admin is the superadmin and creates accounts; each
account's admin logs in to their own account, configures its channels (secrets sealed, never shown
again, kept when the field is left empty), its reopen window and retention, and its API tokens;
a disabled account is shut out at once."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.services.agents import add_agent
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.models import utcnow
from tests import factories
from tests.conftest import make_settings, raw_database_of
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REVEALED = re.compile(r'id="revealed-value" value="([^"]+)"')


class Browser:
    """A cookie jar of its own against the router (one person's browser)."""

    def __init__(self, client: TestClient) -> None:
        self.base = f"http://127.0.0.1:{client.server.port}"
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def log_in(self, account: str, login: str, password: str) -> aiohttp.ClientResponse:
        page = await (await self.session.get(f"{self.base}/login")).text()
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        return await self.session.post(
            f"{self.base}/login",
            allow_redirects=False,
            data={"account": account, "login": login, "password": password, "csrf_token": token},
        )

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def post(self, path: str, form: dict[str, str], page: str = "/console") -> tuple[int, str]:
        csrf = CSRF.search((await self.get(page))[1]).group(1)  # type: ignore[union-attr]
        async with self.session.post(
            self.base + path, data={**form, "csrf_token": csrf}, allow_redirects=False
        ) as response:
            return response.status, await response.text()

    async def close(self) -> None:
        await self.session.close()


async def superadmin(client: TestClient) -> Browser:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    browser = Browser(client)
    assert (await browser.log_in("default", login, password)).status == 303
    return browser


async def new_account(boss: Browser, account_id: str) -> str:
    """Create an account with its first admin ``boss``; returns the password shown once."""
    status, page = await boss.post("/admin/accounts", {"id": account_id, "name": f"Shop {account_id}", "admin": "boss"})
    assert status == 200, page
    return REVEALED.search(page).group(1)  # type: ignore[union-attr]


async def test_the_superadmin_creates_an_account_whose_admin_runs_only_that_account(client: TestClient) -> None:
    root = await superadmin(client)
    admin = Browser(client)
    try:
        agents = await client.server.app[STORE].agents.list_agents("default")
        assert [a.role for a in agents] == [Role.SUPERADMIN]  # the first-run admin
        password = await new_account(root, "shop2")
        status, page = await root.get("/admin/accounts")
        assert status == 200 and 'id="account-shop2"' in page and password not in page  # shown once only
        assert (await root.post("/admin/accounts", {"id": "shop2", "name": "Again", "admin": "x1"}))[0] == 409

        assert (await admin.log_in("default", "boss", password)).status == 401  # boss is shop2's
        assert (await admin.log_in("shop2", "boss", password)).status == 303
        status, page = await admin.get("/admin/account")
        assert status == 200 and "Shop shop2" in page and "/webhooks/telegram/shop2" in page
        assert (await admin.get("/admin/accounts"))[0] == 403
        status, page = await admin.get("/admin")
        assert status == 200 and "boss" in page and "superadmin" not in page  # no other account's agents
    finally:
        await root.close()
        await admin.close()


async def test_the_403_page_names_the_role_the_page_needs_in_the_agent_s_language(client: TestClient) -> None:
    store = client.server.app[STORE]
    await add_agent(store, "default", "boss", role=Role.ADMIN, password="boss-password-1")
    await add_agent(store, "default", "ann", password="ann-password-1")
    admin, agent = Browser(client), Browser(client)
    try:
        assert (await admin.log_in("default", "boss", "boss-password-1")).status == 303
        status, page = await admin.get("/admin/accounts")
        assert status == 403 and "Only the install&#39;s superadmin may open this page." in page
        boss = await store.agents.agent_by_login("default", "boss")
        assert boss is not None
        await store.agents.update_agent(boss.id, lang="lv")
        status, page = await admin.get("/admin/accounts")
        assert status == 403 and "Šo lapu var atvērt tikai instalācijas superadministrators." in page
        await store.agents.update_agent(boss.id, lang="ru")
        status, page = await admin.get("/admin/accounts")
        assert status == 403 and "Эту страницу может открывать только суперадминистратор установки." in page
        assert (await agent.log_in("default", "ann", "ann-password-1")).status == 303
        status, page = await agent.get("/admin")
        assert status == 403 and "Only admins may open this page." in page
    finally:
        await admin.close()
        await agent.close()


async def test_a_disabled_account_is_shut_out_at_once_and_let_back_in(client: TestClient) -> None:
    root = await superadmin(client)
    admin = Browser(client)
    try:
        password = await new_account(root, "shop3")
        assert (await admin.log_in("shop3", "boss", password)).status == 303
        _status, page = await admin.post("/admin/account/tokens", {"name": "crm", "scope_read": "on"}, "/admin/account")
        token = REVEALED.search(page).group(1)  # type: ignore[union-attr]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/threads", headers=headers)).status == 200
        assert (await root.post("/admin/accounts/default", {"action": "disable"}))[0] == 409
        assert (await root.post("/admin/accounts/shop3", {"action": "disable"}))[0] == 303

        assert (await admin.get("/console"))[0] == 303  # logged out
        refused = await admin.log_in("shop3", "boss", password)
        assert refused.status == 403 and "This account is disabled." in await refused.text()
        assert (await client.get("/api/threads", headers=headers)).status == 403
        chat = await client.post("/webchat/messages", params={"account": "shop3"}, json={"id": "c1", "text": "hi"})
        assert chat.status == 404
        assert "badge--prio" in (await root.get("/admin/accounts"))[1]

        assert (await root.post("/admin/accounts/shop3", {"action": "enable"}))[0] == 303
        assert (await admin.log_in("shop3", "boss", password)).status == 303
        assert (await client.get("/api/threads", headers=headers)).status == 200
    finally:
        await root.close()
        await admin.close()


async def test_api_tokens_are_shown_once_and_revoked_from_the_account_page(client: TestClient) -> None:
    root = await superadmin(client)
    try:
        status, page = await root.post(
            "/admin/account/tokens", {"name": "reports", "scope_read": "on"}, "/admin/account"
        )
        token = REVEALED.search(page).group(1)  # type: ignore[union-attr]
        assert status == 200 and token.startswith("omr_")
        status, page = await root.get("/admin/account")
        assert token not in page and token[:8] in page  # listed by its first characters only
        [stored] = await client.server.app[STORE].accounts.list_api_tokens("default")
        assert token not in str(stored.to_doc()) and stored.scopes == ["read"]  # the record holds its hash
        assert (await root.post(f"/admin/account/tokens/{stored.id}/revoke", {}, "/admin/account"))[0] == 303
        assert (await client.get("/api/threads", headers={"Authorization": f"Bearer {token}"})).status == 401
        assert (await root.post("/admin/account/tokens", {"name": "", "scope_read": "on"}, "/admin/account"))[0] == 400
    finally:
        await root.close()


async def test_the_reopen_window_is_the_account_s_own(client: TestClient) -> None:
    root = await superadmin(client)
    try:
        status, _ = await root.post("/admin/account/conversations", {"reopen_days": "0.5"}, "/admin/account")
        assert status == 303
        assert (await client.server.app[QUEUE].routing("default")).reopen_days == 0.5
        assert 'value="0.5"' in (await root.get("/admin/account"))[1]
        assert (await root.post("/admin/account/conversations", {"reopen_days": "-1"}, "/admin/account"))[0] == 400
        assert (await root.post("/admin/account/conversations", {"reopen_days": "soon"}, "/admin/account"))[0] == 400
        entries = await factories.audit(client.server.app[STORE], action="settings.reopen")
        assert [e.details["days"] for e in entries] == [0.5]
    finally:
        await root.close()


async def test_only_a_superadmin_changes_a_superadmin(client: TestClient) -> None:
    store = client.server.app[STORE]
    _, password = await add_agent(store, "default", "deputy", role=Role.ADMIN)
    deputy = Browser(client)
    try:
        assert (await deputy.log_in("default", "deputy", password)).status == 303
        top = next(a for a in await store.agents.list_agents("default") if a.role == Role.SUPERADMIN)
        status, _ = await deputy.post(f"/admin/agents/{top.id}", {"role": "agent", "capacity": "5", "teams": ""})
        assert status == 403 and (await store.agents.get_agent(top.id)).role == Role.SUPERADMIN  # type: ignore[union-attr]
        assert (await deputy.post("/admin/agents", {"login": "sneak", "role": "superadmin", "capacity": "5"}))[0] == 400
    finally:
        await deputy.close()


async def test_channel_secrets_saved_in_the_console_are_sealed_never_shown_and_used(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    bot_api = FakeBotAPI()
    await bot_api.start()
    try:
        # the install's own account has no bot: telegram.for_accounts serves the accounts' own bots, and
        # the operator allows the (fake) Bot API server the account's admin names
        settings = make_settings(
            embedded.uri,
            db_name,
            telegram={"for_accounts": True, "pacing": 0.0},
            egress={"allowed_destinations": bot_api.url.removeprefix("http://")},
        )
        client: TestClient = await start_client(settings)
        assert (await post_telegram(client, fixture("telegram", "text"))).status == 404  # no bot of its own
        root = await superadmin(client)
        admin = Browser(client)
        password = await new_account(root, "shop4")
        assert (await admin.log_in("shop4", "boss", password)).status == 303
        form = {"token": bot_api.token, "webhook_secret": "shop4-hook-secret", "api_base": bot_api.url}
        assert (await admin.post("/admin/account/channels/telegram", form, "/admin/account"))[0] == 303
        status, page = await admin.get("/admin/account")
        assert bot_api.token not in page and "shop4-hook-secret" not in page and "✓ set" in page
        raw = await raw_database_of(client.server.app[STORE]).accounts.find_one({"_id": "shop4"})  # at rest
        assert bot_api.token not in str(raw) and "shop4-hook-secret" not in str(raw)

        # an empty secret field keeps what is stored; a bad one is refused; required ones stay required
        status, _ = await admin.post(
            "/admin/account/channels/telegram",
            {"token": "", "webhook_secret": "", "api_base": bot_api.url},
            "/admin/account",
        )
        assert status == 303
        account = await client.server.app[STORE].accounts.get_account("shop4")
        assert account is not None and account.channels["telegram"]["token"] == bot_api.token
        assert (
            await admin.post(
                "/admin/account/channels/telegram", {"webhook_secret": "no spaces allowed"}, "/admin/account"
            )
        )[0] == 400
        assert (await admin.post("/admin/account/channels/whatsapp", {"phone_number_id": "1"}, "/admin/account"))[
            0
        ] == 400
        # a number another inbox receives is refused to the account's own settings, and kept out
        store = client.server.app[STORE]
        await store.inboxes.create_inbox(
            "default", "whatsapp", "theirs", {"phone_number_id": "777"}, utcnow(), "whatsapp:777"
        )
        number = {"phone_number_id": "777", "access_token": "t", "app_secret": "s", "verify_token": "v"}
        status, page = await admin.post("/admin/account/channels/whatsapp", number, "/admin/account")
        assert status == 409 and "777" in page
        account = await store.accounts.get_account("shop4")
        assert account is not None and "whatsapp" not in account.channels
        number["phone_number_id"] = "778"
        assert (await admin.post("/admin/account/channels/whatsapp", number, "/admin/account"))[0] == 303

        ok = await post_telegram(
            client, fixture("telegram", "text"), secret="shop4-hook-secret", path="/webhooks/telegram/shop4"
        )
        assert ok.status == 200  # the router uses what the admin saved, without a restart

        async def answered() -> bool:
            return len(bot_api.sent("sendMessage")) == 1

        await wait_for(answered)
        assert (await post_telegram(client, fixture("telegram", "text"), path="/webhooks/telegram/shop4")).status == 401
        await root.close()
        await admin.close()
    finally:
        await bot_api.stop()


async def test_the_install_s_own_account_keeps_its_channels_in_the_settings_file(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name))
    root = await superadmin(client)
    try:
        status, page = await root.get("/admin/account")
        assert status == 200 and "config/omnirouter.toml" in page and 'id="channel-telegram"' not in page
        assert (
            await root.post(
                "/admin/account/channels/telegram", {"token": "1:x", "webhook_secret": "s"}, "/admin/account"
            )
        )[0] == 404
    finally:
        await root.close()
