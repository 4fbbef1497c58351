"""`omnirouter nlu test-stories` as a user runs it: the shipped story sets through the real bot,
against the starter's actions on a real rasa-sdk server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.actions import ActionServer
from tests.cli.test_serve import run

ROOT = Path(__file__).resolve().parents[2]
SETS = [str(ROOT / "config" / "stories" / f"{language}.yml") for language in ("en", "lv", "ru")]


async def test_the_starter_story_sets_pass_in_every_language(action_server: ActionServer) -> None:
    code, out, _ = await run(
        "nlu", "test-stories", *SETS, "--actions", action_server.url, "--json", cwd=ROOT, timeout=300
    )
    report = json.loads(out)
    assert code == 0, report["failed"]
    assert report["stories"] == report["stories_passed"] >= 90 and report["turns"] == report["turns_correct"]


STORY = """
stories:
  - story: greeting answered with the wrong thing
    steps:
      - user: hello there
      - action: utter_goodbye
  - story: opening hours
    steps:
      - user: what are your opening hours?
        intent: opening_hours
      - action: utter_opening_hours
"""


async def test_a_failing_story_is_named_with_its_turn_and_the_exit_is_1(tmp_path: Path) -> None:
    stories = tmp_path / "stories.yml"
    stories.write_text(STORY)
    code, out, _ = await run("nlu", "test-stories", str(stories), "--no-semantic", cwd=ROOT, timeout=120)
    assert code == 1
    assert "FAIL  greeting answered with the wrong thing  (0/1 turns)" in out
    assert "turn 1 ('hello there'): actions ['utter_greet'], expected ['utter_goodbye']" in out
    assert "PASS  opening hours  (1/1 turns)" in out and "stories passed: 1/2; turns correct: 1/2 (50.0 %)" in out


async def test_a_wrong_stories_file_is_refused_in_one_line(tmp_path: Path) -> None:
    stories = tmp_path / "stories.yml"
    stories.write_text("stories:\n  - story: no user first\n    steps:\n      - action: utter_greet\n")
    code, out, err = await run("nlu", "test-stories", str(stories), cwd=ROOT)
    assert (code, out) == (2, "")
    assert err.strip() == f"omnirouter: {stories}: story 'no user first': `steps:` must start with a `user:` step"
