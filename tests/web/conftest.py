"""Debian's headless Chromium, driven by Playwright, shared by the browser tests; a router with
small training files and the lexical tier only, for the intent-training tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, async_playwright

from tests.conftest import make_settings
from tests.nlu.test_versions import DATA

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def training_client(embedded: Any, db_name: str, start_client: Any, tmp_path: Path) -> TestClient:
    """A router whose starter training data is three intents of four examples (``DATA``), trained
    without embeddings so a training takes a fraction of a second."""
    (tmp_path / "en.yml").write_text(DATA)
    settings = make_settings(embedded.uri, db_name, nlu={"semantic": False, "data": str(tmp_path)})
    client: TestClient = await start_client(settings)
    return client
