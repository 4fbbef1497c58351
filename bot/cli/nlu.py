"""``omnirouter nlu train | parse | eval`` (and ``test-stories``, ``bot/cli/stories.py``).

``train`` and ``parse`` work on the store the router uses: they open it directly (starting the
embedded store when no MongoDB URI is set) or, when a running router holds the embedded store,
ask that router through its API (with the install token). ``eval`` needs no store: it trains on
one file, calibrates on another (or on the training file: a held-out part, or cross-validated)
and reports on a third.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bot.cli.common import CliError, bearer, held_by_router, router_url
from bot.nlu.formats import NluFormatError, load_paths
from bot.nlu.remote import SessionFactory
from bot.nlu.training import TrainingError, TrainOptions
from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories


def train(args: argparse.Namespace, settings: Settings) -> int:
    return _run(_train(args, settings))


def parse(args: argparse.Namespace, settings: Settings) -> int:
    return _run(_parse(args, settings))


def _run(work: Any) -> int:
    try:
        result: int = asyncio.run(work)
        return result
    except (NluFormatError, TrainingError) as exc:
        raise CliError(str(exc), 2) from None
    except StoreUnavailable as exc:
        raise CliError(f"cannot reach the store: {exc}", 1) from None
    except aiohttp.ClientError as exc:
        raise CliError(f"cannot reach the router: {type(exc).__name__}; is `omnirouter serve` running?", 1) from None


_STAGE: list[str] = [""]


def _progress(stage: str, done: int, total: int) -> None:
    """One line per training stage; the embedding stage counts up in place."""
    if stage != _STAGE[0]:
        if _STAGE[0]:
            print(file=sys.stderr)
        _STAGE[0] = stage
    count = f" {done}/{total}" if stage == "embedding" else ""
    print(f"\r  {stage}{count}", end="", file=sys.stderr, flush=True)
    if stage == "done":
        print(file=sys.stderr)
        _STAGE[0] = ""


@contextlib.asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Repositories | None]:
    """The store, or ``None`` when a running router holds the embedded one (use its API)."""
    embedded = None
    uri = settings.store.mongodb_uri
    if not uri:
        if held_by_router(Path(settings.store.embedded_dir)):
            yield None
            return
        embedded = EmbeddedMongo(Path(settings.store.embedded_dir), mode=settings.store.embedded_mode)  # type: ignore[arg-type]
        await embedded.start()
        uri = embedded.uri
    store = Repositories.connect(uri, settings.store.database, timeout_ms=settings.store.timeout_ms)
    try:
        await store.ensure_indexes()
        yield store
    finally:
        await store.close()
        if embedded is not None:
            await embedded.stop()


def _egress_session(settings: Settings) -> SessionFactory:
    from bot.handlers.kit.egress_guards import EgressGuards  # the CLI sits above the channels; the NLU layer does not

    return EgressGuards.from_settings(settings).rasa.session


async def _train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.nlu.service import NluService
    from bot.nlu.training_set import TrainingSet

    account = args.account or settings.account.id
    async with _store(settings) as store:
        if store is None:
            return await _train_remotely(args, settings, account)
        service = NluService(store, settings.nlu, http=_egress_session(settings))
        request = service.train_request(account, args.data, activate=not args.no_activate, by="cli")
        await store.accounts.ensure_account(account, settings.account.name, utcnow())
        if args.data and await TrainingSet(store, account, []).in_store():
            print(
                f"omnirouter: account {account}'s training data is edited in the console (it lives in the "
                "store now): --data is ignored; import files with POST /api/nlu/import",
                file=sys.stderr,
            )
        try:
            version = await service.train(request, _progress)
        finally:
            await service.close()
        model = await store.nlu.get_nlu_model(version) or {}
    state = "active" if not args.no_activate else "stored, not active"
    print(
        f"model {version} ({state}): {model.get('intents')} intents, {model.get('examples')} examples, "
        f"languages {', '.join(model.get('languages') or []) or '-'}, {model.get('train_seconds')} s"
    )
    metrics = model.get("metrics") or {}
    if metrics:
        print(f"{metrics['method']}: accuracy {metrics['accuracy']} %, macro F1 {metrics['macro_f1']} %")
    return 0


async def _train_remotely(args: argparse.Namespace, settings: Settings, account: str) -> int:
    if args.data:
        print("omnirouter: a running router trains from its own nlu.data; --data is ignored", file=sys.stderr)
    base = router_url(args, settings)
    async with aiohttp.ClientSession(headers=bearer(settings)) as session:
        async with session.post(
            f"{base}/api/nlu/train", params={"account": account}, json={"activate": not args.no_activate}
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 202:
                print(f"omnirouter: the router refused: {body.get('detail')}", file=sys.stderr)
                return 1
        while True:
            await asyncio.sleep(0.5)
            async with session.get(f"{base}{body['url']}") as response:
                job = await response.json(content_type=None)
            if job.get("state") == "running":
                _progress(job.get("stage", "training"), int(job.get("done", 0)), int(job.get("total", 0)))
                continue
            if job.get("state") == "done":
                _progress("done", 1, 1)
                print(f"model {job['version']} trained by the router at {base}")
                if "accuracy" in job:
                    print(f"{job.get('method')}: accuracy {job['accuracy']} %, macro F1 {job.get('macro_f1')} %")
                return 0
            print(f"\nomnirouter: training failed: {job.get('error')}", file=sys.stderr)
            return 2


async def _parse(args: argparse.Namespace, settings: Settings) -> int:
    from bot.nlu.service import NluService

    account = args.account or settings.account.id
    async with _store(settings) as store:
        if store is None:
            base = router_url(args, settings)
            async with aiohttp.ClientSession(headers=bearer(settings)) as session:
                async with session.post(
                    f"{base}/api/nlu/parse", params={"account": account}, json={"text": args.text}
                ) as response:
                    body = await response.json(content_type=None)
            if response.status != 200:
                print(f"omnirouter: {body.get('detail')}", file=sys.stderr)
                return 1
        else:
            service = NluService(store, settings.nlu, http=_egress_session(settings))
            try:
                result = await service.parse(account, args.text)
            finally:
                await service.close()
            if result is None:
                print("omnirouter: no model is active; run `omnirouter nlu train` first", file=sys.stderr)
                return 1
            body = {"text": args.text, **result.to_doc()}
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return 0


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.nlu.embedder import default_embedder
    from bot.nlu.evaluate import train_and_evaluate

    try:
        training = load_paths([args.train])
        test = load_paths([args.test]).examples
        validation = load_paths([args.val]).examples if args.val else None
    except NluFormatError as exc:
        raise CliError(str(exc), 2) from None
    if not test:
        raise CliError(f"{args.test}: no examples", 2)
    semantic = settings.nlu.semantic and not args.no_semantic
    embedder = default_embedder() if semantic else None
    options = TrainOptions(
        semantic=semantic,
        oos_label=args.oos_label,
        ambiguity_margin=settings.nlu.ambiguity_margin,
        target_rejection=settings.nlu.target_rejection if args.target_rejection is None else args.target_rejection,
    )
    try:
        _, report = train_and_evaluate(training, test, embedder, validation, options, None if args.json else _progress)
    except TrainingError as exc:
        raise CliError(str(exc), 2) from None
    result = report.as_dict()
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}))
    else:
        for key, value in result.items():
            print(f"{key:20s} {'-' if value is None else value}")
    return 0
