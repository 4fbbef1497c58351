"""`omnirouter nlu train | parse | eval` as a user runs them: real processes, real store."""

from __future__ import annotations

import fcntl
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conversations.embedded import EmbeddedMongo
from tests.cli.test_serve import run
from tests.conftest import TEST_API_TOKEN, make_settings
from tests.nlu.test_versions import DATA

TRAIN = [
    ("when are you open", "hours"),
    ("what are your opening hours", "hours"),
    ("are you open on sunday", "hours"),
    ("what time do you close", "hours"),
    ("opening times please", "hours"),
    ("are you open today", "hours"),
    ("do you deliver", "delivery"),
    ("how long does shipping take", "delivery"),
    ("do you ship abroad", "delivery"),
    ("is delivery free", "delivery"),
    ("which courier do you use", "delivery"),
    ("can you send it to riga", "delivery"),
    ("hello", "greet"),
    ("hi there", "greet"),
    ("good morning", "greet"),
    ("hey", "greet"),
    ("hiya", "greet"),
    ("tell me a joke", "oos"),
    ("what is the weather", "oos"),
    ("play music", "oos"),
]
TEST = [
    ("are you open on saturday", "hours"),
    ("does shipping cost extra", "delivery"),
    ("good evening", "greet"),
    ("who won the match", "oos"),
]


def jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in rows))
    return path


async def test_eval_prints_one_json_object(tmp_path: Path) -> None:
    train, test = jsonl(tmp_path / "train.jsonl", TRAIN), jsonl(tmp_path / "test.jsonl", TEST)
    code, out, err = await run(
        "nlu", "eval", "--train", str(train), "--test", str(test), "--oos-label", "oos", "--json", cwd=tmp_path
    )
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {
        "accuracy",
        "in_scope_accuracy",
        "closed_set_accuracy",
        "rejection_rate",
        "oos_recall",
        "macro_f1",
        "train_seconds",
        "predict_ms_p50",
        "predict_ms_p99",
    }
    assert result["in_scope_accuracy"] >= 66 and 0 < result["predict_ms_p50"] <= result["predict_ms_p99"]
    assert result["closed_set_accuracy"] >= result["in_scope_accuracy"] and 0 <= result["rejection_rate"] <= 100

    code, out, _ = await run(
        "nlu",
        "eval",
        "--train",
        str(train),
        "--test",
        str(test),
        "--val",
        str(test),
        "--oos-label",
        "oos",
        "--no-semantic",
        cwd=tmp_path,
    )
    assert code == 0 and "in_scope_accuracy" in out and "{" not in out
    assert "closed_set_accuracy" in out and "rejection_rate" in out


async def test_eval_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "hi", "intent": "greet"}\n{"text": "yo", "intent": 3}\n')
    code, out, err = await run("nlu", "eval", "--train", str(bad), "--test", str(bad), cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip() == f'omnirouter: {bad}:2: "intent" must be a non-empty string'


async def test_train_then_parse_on_the_embedded_store(tmp_path: Path) -> None:
    (tmp_path / "en.yml").write_text(DATA)
    env = {"OMNIROUTER_STORE_EMBEDDED_DIR": str(tmp_path / "store"), "OMNIROUTER_NLU_DATA": str(tmp_path / "en.yml")}
    code, out, err = await run("nlu", "parse", "hello", env=env, cwd=tmp_path)
    assert code == 1 and "no model is active" in err
    code, out, err = await run("nlu", "train", env=env, cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("model ") and "(active): 3 intents, 12 examples, languages en" in out
    assert "embedding" in err and "calibrating" in err  # progress
    code, out, err = await run("nlu", "parse", "are you open on sunday?", env=env, cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["intent"] == "opening_hours"


async def test_train_asks_the_running_router_when_it_holds_the_store(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The router trains (in its child process) and says so in its own log; the command prints the
    version's cross-validated figures."""
    caplog.set_level(logging.INFO, logger="omnirouter.nlu")
    (tmp_path / "en.yml").write_text(DATA)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    lock = open(store_dir / ".omnirouter.lock", "a+")  # as a running router holds it
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        client: TestClient = await start_client(make_settings(embedded.uri, db_name, nlu={"data": str(tmp_path)}))
        env = {"OMNIROUTER_STORE_EMBEDDED_DIR": str(store_dir), "OMNIROUTER_PORT": str(client.server.port)}
        code, out, err = await run("nlu", "train", env=env, cwd=tmp_path)
        assert code == 2 and err.startswith("omnirouter: no install token: var/api.token does not exist")
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "api.token").write_text(TEST_API_TOKEN + "\n")  # as the router writes it
        code, out, err = await run("nlu", "train", env=env, cwd=tmp_path)
        assert code == 0, err
        assert "trained by the router at" in out
        assert re.search(r"cross-validation, both tiers: accuracy \d+(\.\d)? %, macro F1 \d+(\.\d)? %", out), out
        [trained] = [r for r in caplog.records if r.getMessage() == "nlu.trained"]
        fields = trained.omnirouter_fields  # type: ignore[attr-defined]
        assert fields["account"] == "default" and fields["intents"] == 3 and fields["accuracy"] is not None
        code, out, err = await run("nlu", "parse", "good morning", env=env, cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["intent"] == "greet"
    finally:
        lock.close()
