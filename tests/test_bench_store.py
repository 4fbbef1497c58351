"""``bench/load.py --mongodb-uri``: the same benchmark on any MongoDB, in a database of its own."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from bench.load import install_sample, parse_args
from bench.stores import EMBEDDED_DATABASE, EmbeddedStore, ExternalStore, bench_store
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories


def test_without_the_option_the_benchmark_starts_its_own_embedded_store(tmp_path: Path) -> None:
    args = parse_args([])
    assert args.mongodb_uri is None
    store = bench_store(args.mongodb_uri, tmp_path / "store")
    assert isinstance(store, EmbeddedStore)
    assert store.database == EMBEDDED_DATABASE


def test_the_option_points_the_benchmark_at_the_given_mongodb(tmp_path: Path) -> None:
    uri = "mongodb://db1:27017,db2:27017/?replicaSet=rs0&w=majority"
    args = parse_args(["--mongodb-uri", uri, "--lexical"])
    store = bench_store(args.mongodb_uri, tmp_path / "store")
    assert isinstance(store, ExternalStore)
    assert store.uri == uri and store.pid() is None  # no process of it to measure
    assert store.database.startswith("omnirouter_bench_")
    assert ExternalStore(uri).database != store.database  # every run has a fresh database


def test_a_uri_that_is_not_mongodb_is_refused_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_args(["--mongodb-uri", "http://db1:27017"])
    assert stop.value.code == 2
    assert "--mongodb-uri must start with mongodb://" in capsys.readouterr().err


async def test_a_run_on_a_given_mongodb_keeps_to_its_own_database_and_drops_it(embedded: EmbeddedMongo) -> None:
    mine = Repositories.connect(embedded.uri, "users_own_data")
    await mine.client.database.notes.insert_one({"_id": "kept"})
    store = ExternalStore(embedded.uri)
    await store.start()
    bench = Repositories.connect(store.uri, store.database)
    try:
        await bench.ensure_indexes()
        assert await install_sample(store.uri, store.database) == {"text": "hi"}  # nothing of the user's
        await store.stop()
        names = await mine.client.database.client.list_database_names()
        assert store.database not in names
        assert await mine.client.database.notes.find_one({"_id": "kept"}) == {"_id": "kept"}
    finally:
        await bench.close()
        await mine.client.database.client.drop_database("users_own_data")
        await mine.close()


async def test_a_tiny_benchmark_runs_on_a_mongodb_given_by_its_uri(embedded: EmbeddedMongo) -> None:
    """The whole benchmark, 40 messages, on the test session's store given as ``--mongodb-uri``
    (as a user gives theirs): every message answered, and its database gone afterwards."""
    root = Path(__file__).resolve().parent.parent
    before = set(await _database_names(embedded.uri))
    command = [sys.executable, "bench/load.py", "--mongodb-uri", embedded.uri, "-n", "40", "--customers", "2"]
    command += ["--lexical", "--channels", "telegram,webchat", "-c", "8", "--json"]
    run = await asyncio.create_subprocess_exec(
        *command,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), timeout=240)
    assert run.returncode == 0, err.decode()[-3000:]
    (result,) = json.loads(out)
    assert result["tier"] == "lexical" and result["decisions"] == {"answered": 40}
    assert result["end_to_end_rate"] > 0 and result["floor"]["store_write_s"] > 0
    assert result["floor"]["minimal_store_s"] > 0 and result["floor"]["minimal_sum_s"] > result["floor"]["nlu_s"]
    assert result["floor"]["read_share"] == 1  # every message read by the bot: its prediction in the floor
    assert set(await _database_names(embedded.uri)) == before


async def _database_names(uri: str) -> list[str]:
    store = Repositories.connect(uri, "admin")
    try:
        return [
            n for n in await store.client.database.client.list_database_names() if n.startswith("omnirouter_bench_")
        ]
    finally:
        await store.close()
