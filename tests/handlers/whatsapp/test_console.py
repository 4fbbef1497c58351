"""The agent console on a WhatsApp conversation: outside the 24-hour window the agent picks one of
the configured templates, sent through the same checks as an API reply."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests import factories
from tests.handlers.channels import fixture, post_whatsapp
from tests.router.test_inbound import wait_for
from tests.web.console.test_console import CSRF, log_in


async def test_outside_whatsapps_window_the_console_sends_a_configured_template(
    router: TestClient, graph_api: Any
) -> None:
    await post_whatsapp(router, fixture("whatsapp", "text"))  # written long ago: the window is closed
    store = router.server.app[STORE]
    thread = (await factories.threads(store, channel="whatsapp"))[0].id
    _agent, password = await add_agent(store, "default", "wa-agent", role=Role.ADMIN)
    await log_in(router, "wa-agent", password)
    page = await (await router.get("/console", params={"thread": thread})).text()
    assert 'value="order_update"' in page and "name, order" in page  # the picker, with its parameters
    token, nonce = CSRF.search(page).group(1), re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "nonce": nonce, "template": "order_update"}
    short = await router.post(f"/console/threads/{thread}/template", data={**form, "parameters": "Sheena"})
    assert "takes 2 parameters" in await short.text()
    await router.post(f"/console/threads/{thread}/template", data={**form, "parameters": "Sheena, 4471"})
    await router.post(f"/console/threads/{thread}/template", data={**form, "parameters": "Sheena, 4471"})  # resent form

    async def template_sent() -> bool:
        return any(body.get("type") == "template" for body in graph_api.sent())

    await wait_for(template_sent)
    templates = [body for body in graph_api.sent() if body.get("type") == "template"]
    assert len(templates) == 1  # the form's nonce makes a resubmission a no-op
    assert templates[0]["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Sheena"},
        {"type": "text", "text": "4471"},
    ]
