"""``omnirouter nlu test-stories FILE...``: conversation tests in Rasa's test-stories format.

Trains a model from ``nlu.data`` (as ``nlu eval`` does, no store needed), then plays every story
through the bot's real decision with the install's dialogue files and responses; prints each story's
verdict and a summary, and exits 1 when a story fails (2 for a wrong file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import CliError
from bot.handlers.kit.egress import Egress, HostRule, url_rule
from bot.handlers.kit.egress_guards import EgressGuards
from bot.nlu.data import Parse
from bot.nlu.formats import NluFormatError, load_paths
from bot.nlu.responses import ResponsesError, load_responses
from bot.nlu.training import TrainingError, TrainOptions
from bot.router.dialogue.actions import ActionServer
from bot.router.dialogue.domain import DomainError, load_domain
from bot.router.dialogue.engine import Dialogue
from bot.router.dialogue.http_actions import HttpActions
from bot.router.dialogue.stories import StoriesError, Story, StoryResult, load_stories, run_story
from bot.settings import Settings
from conversations.embedded import free_port


def run_stories(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stories = [story for path in args.files for story in load_stories(path)]
        responses = load_responses(Path(settings.nlu.responses))
        domain = load_domain(Path(settings.dialogue.folder))
        training = load_paths([Path(p.strip()) for p in settings.nlu.data.split(",") if p.strip()])
    except (StoriesError, ResponsesError, DomainError, NluFormatError) as exc:
        raise CliError(str(exc), 2) from None
    if not stories:
        raise CliError("no stories in " + ", ".join(map(str, args.files)), 2)
    from bot.nlu.embedder import EmbeddingCache, default_embedder
    from bot.nlu.training import train

    semantic = settings.nlu.semantic and not args.no_semantic
    embedder = default_embedder() if semantic else None
    print(f"training on {len(training.examples)} examples ...", file=sys.stderr)
    try:
        model = train(
            training,
            embedder,
            EmbeddingCache(),
            None,
            TrainOptions(semantic=semantic, target_rejection=settings.nlu.target_rejection),
        )
    except TrainingError as exc:
        raise CliError(str(exc), 2) from None

    async def parse(text: str) -> Parse:
        return await asyncio.to_thread(model.parse, text, embedder, settings.nlu.ambiguity_margin)

    results = asyncio.run(_play(stories, settings, args.actions, parse, responses, domain))
    _report(results, args.json)
    return 0 if all(r.passed for r in results) else 1


async def _play(
    stories: list[Story], settings: Settings, endpoint: str | None, parse: Any, responses: Any, domain: Any
) -> list[StoryResult]:
    endpoint = endpoint or settings.dialogue.action_endpoint
    guard = EgressGuards.from_settings(settings).actions
    if endpoint and endpoint != settings.dialogue.action_endpoint:  # given here: allowed like the setting's
        guard = Egress([*guard.allowed, *([r] if (r := url_rule(endpoint)) else [])])
    working = ActionServer(endpoint, guard.session, settings.dialogue.action_timeout) if endpoint else None
    down = ActionServer(f"http://127.0.0.1:{free_port()}/webhook", Egress([HostRule("127.0.0.1")]).session, 2)
    http = HttpActions(guard.session, _no_secrets)  # secrets live in the store, which stories do without
    results = []
    try:
        for story in stories:
            actions = down if story.actions_down else working
            dialogue = Dialogue(domain, responses, actions, settings.dialogue.clear_intent, http)
            results.append(await run_story(story, dialogue, parse, responses))
    finally:
        for server in (working, down):
            if server is not None:
                await server.close()
        await http.close()
    return results


async def _no_secrets(stored_name: str) -> str | None:
    return None


def _report(results: list[StoryResult], as_json: bool) -> None:
    passed = sum(r.passed for r in results)
    turns, correct = sum(r.turns for r in results), sum(r.correct for r in results)
    if as_json:
        print(
            json.dumps(
                {
                    "stories": len(results),
                    "stories_passed": passed,
                    "turns": turns,
                    "turns_correct": correct,
                    "failed": [{"story": r.name, "failures": r.failures} for r in results if not r.passed],
                },
                ensure_ascii=False,
            )
        )
        return
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}  ({r.correct}/{r.turns} turns)")
        for failure in r.failures:
            print(f"        {failure}")
    print(
        f"stories passed: {passed}/{len(results)}; turns correct: {correct}/{turns} ({100 * correct / max(turns, 1):.1f} %)"
    )
