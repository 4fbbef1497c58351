"""The training page explains its figures to a newcomer, says whether a new version is better or
worse than the active one, and asks before activating a worse one (a rollback included)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.admin.training import verdict
from conversations.agent_models import Role
from conversations.models import utcnow
from tests.nlu.conftest import starter_blob  # noqa: F401 (the session's starter model)
from tests.web.console.test_console import console_csrf, log_in

PASSWORD = "correct horse battery"


def figures(accuracy: float, macro_f1: float) -> dict[str, Any]:
    row = {"intent": "out_of_scope", "precision": 21.7, "recall": 50.0, "f1": 30.0, "support": 4}
    return {"accuracy": accuracy, "macro_f1": macro_f1, "examples": 40, "per_intent": [row], "confused": []}


@pytest.mark.parametrize(
    ("new", "active", "outcome"),
    [
        ((91.0, 88.0), (86.0, 87.0), "better"),
        ((84.0, 90.0), (86.0, 87.0), "worse"),  # accuracy decides
        ((86.5, 80.0), (86.0, 87.0), "worse"),  # a tie on accuracy: macro F1 decides
        ((86.5, 87.5), (86.0, 87.0), "same"),
    ],
)
def test_a_version_is_compared_by_accuracy_then_macro_f1(
    new: tuple[float, float], active: tuple[float, float], outcome: str
) -> None:
    found = verdict(figures(*new), figures(*active))
    assert found is not None and found["outcome"] == outcome
    assert verdict(figures(*new), None) is None and verdict({}, figures(*active)) is None


async def versions(client: TestClient, blob: bytes) -> str:
    """Two versions of the default account: "good" (active) and "weak"; the admin's CSRF token."""
    store, now = client.server.app[STORE], utcnow()
    for version, (accuracy, f1) in {"good": (92.0, 90.0), "weak": (67.0, 55.0)}.items():
        info = {"created_by": "test", "intents": 3, "examples": 40, "metrics": figures(accuracy, f1)}
        await store.nlu.save_nlu_model("default", version, blob, info, now)
    assert await store.nlu.activate_nlu_model("default", "good", "test", now)
    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    await log_in(client, "ada", PASSWORD)
    return await console_csrf(client, "/admin/intents/train")


async def test_activating_a_worse_version_asks_first(client: TestClient, starter_blob: bytes) -> None:
    csrf = await versions(client, starter_blob)
    store = client.server.app[STORE]
    asked = await client.post("/admin/intents/models/weak/activate", data={"csrf_token": csrf})
    html = await asked.text()
    assert asked.status == 409 and 'id="activate-warning"' in html
    assert "accuracy -25.0 points, macro F1 -35.0 points" in html
    assert await store.nlu.active_nlu_version("default") == "good"

    await client.post("/admin/intents/models/weak/activate", data={"csrf_token": csrf, "confirm": "worse"})
    assert await store.nlu.active_nlu_version("default") == "weak"
    back = await client.post("/admin/intents/models/good/activate", data={"csrf_token": csrf})  # better: no question
    assert back.status == 200 and await store.nlu.active_nlu_version("default") == "good"


async def test_a_finished_training_says_how_it_compares_and_what_the_figures_mean(
    client: TestClient, starter_blob: bytes
) -> None:
    csrf = await versions(client, starter_blob)
    store = client.server.app[STORE]
    await store.nlu.start_nlu_job("job-1", "default", utcnow())
    await store.nlu.update_nlu_job("job-1", utcnow(), state="done", version="weak")
    html = await (await client.get("/admin/intents/jobs/job-1", headers={"HX-Request": "true"})).text()
    assert 'class="verdict verdict--worse' in html and "Worse than the active version" in html
    assert "What these figures mean" in html and "out of scope (not for the bot)" in html
    assert ">out_of_scope<" not in html
    assert csrf
