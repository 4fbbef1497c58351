"""Conversation tests in Rasa's test-stories format, run through the bot's real decision
(:func:`bot.router.dialogue.conversation.respond`) with a real NLU model.

```yaml
stories:
  - story: a bare order number answers the question
    steps:
      - user: where is my order?
        intent: order_status          # optional: the intent the message must get
      - action: order_status_form
      - active_loop: order_status_form
      - user: A-10234
      - action: order_status_form
      - slot_was_set:
          - order_number: A-10234
      - active_loop: null
      - action: action_order_status
```

After each ``user`` turn, the bot's actions must be exactly the story's (in order); the story's
``active_loop`` and ``slot_was_set`` steps must be among what the bot did. ``metadata: {actions:
down}`` runs a story with its action server unreachable (the hand-off path). A story passes when
every turn is right; a wrong file is refused with the file and the story.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlu.data import Parse
from bot.nlu.yaml_files import read_mapping
from bot.router.dialogue.conversation import respond
from bot.router.dialogue.engine import Dialogue, Event, Said
from bot.router.dialogue.state import DialogueState


class StoriesError(ValueError):
    """The stories file is wrong; the message names the file and the story."""


@dataclass(frozen=True)
class UserTurn:
    text: str
    intent: str | None
    expected: tuple[Event, ...]


@dataclass(frozen=True)
class Story:
    name: str
    turns: tuple[UserTurn, ...]
    actions_down: bool = False


@dataclass
class StoryResult:
    name: str
    turns: int
    correct: int
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.correct == self.turns


def load_stories(path: Path) -> list[Story]:
    raw = read_mapping(path, StoriesError, "with `stories:`")
    if not isinstance(raw.get("stories"), list):
        raise StoriesError(f"{path}: expected `stories:` with a list of stories (Rasa's test-stories format)")
    return [_story(item, path, n) for n, item in enumerate(raw["stories"])]


def _story(item: Any, path: Path, n: int) -> Story:
    name = str(item.get("story", f"#{n + 1}")) if isinstance(item, Mapping) else f"#{n + 1}"
    steps = item.get("steps") if isinstance(item, Mapping) else None
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], Mapping) or "user" not in steps[0]:
        raise StoriesError(f"{path}: story {name!r}: `steps:` must start with a `user:` step")
    turns: list[UserTurn] = []
    for step in steps:
        if not isinstance(step, Mapping):
            raise StoriesError(f"{path}: story {name!r}: every step must be a mapping, got {step!r}")
        if "user" in step:
            intent = step.get("intent")
            turns.append(UserTurn(str(step["user"]).strip(), str(intent) if intent else None, ()))
        else:
            event = _event(step, path, name)
            last = turns[-1]
            turns[-1] = UserTurn(last.text, last.intent, (*last.expected, *event))
    metadata = item.get("metadata") or {}
    return Story(name, tuple(turns), actions_down=metadata.get("actions") == "down")


def _event(step: Mapping[str, Any], path: Path, story: str) -> tuple[Event, ...]:
    if "action" in step:
        return (("action", str(step["action"])),)
    if "active_loop" in step:
        loop = step["active_loop"]
        return (("active_loop", None if loop is None else str(loop)),)
    if "slot_was_set" in step:
        slots = step["slot_was_set"]
        items = [s for s in slots if isinstance(s, Mapping)] if isinstance(slots, list) else []
        return tuple(("slot", (str(k), v)) for s in items for k, v in s.items())
    raise StoriesError(
        f"{path}: story {story!r}: unknown step {dict(step)!r} (user, action, active_loop, slot_was_set)"
    )


Parser = Callable[[str], Awaitable[Parse]]


async def run_story(story: Story, dialogue: Dialogue, parse: Parser, responses: Any) -> StoryResult:
    """Play ``story``'s user turns through the bot; what went wrong, turn by turn."""
    state = DialogueState()
    result = StoryResult(story.name, len(story.turns), 0)
    for n, turn in enumerate(story.turns, start=1):
        said = Said(f"story-{story.name}", "webchat", turn.text, f"{story.name}-{n}")
        step = await respond(dialogue, responses, said, await parse(turn.text), state)
        state = step.state
        problem = _compare(turn, step.parse.intent, step.events)
        if problem:
            result.failures.append(f"turn {n} ({turn.text!r}): {problem}")
        else:
            result.correct += 1
    return result


def _compare(turn: UserTurn, intent: str, events: Sequence[Event]) -> str | None:
    if turn.intent is not None and turn.intent != intent:
        return f"intent {intent}, expected {turn.intent}"
    did = [value for kind, value in events if kind == "action"]
    expected = [value for kind, value in turn.expected if kind == "action"]
    if did != expected:
        return f"actions {did}, expected {expected}"
    missing = [_show(e) for e in turn.expected if e[0] != "action" and not _among(e, events)]
    return f"not done: {', '.join(missing)}" if missing else None


def _among(expected: Event, events: Sequence[Event]) -> bool:
    if expected[0] == "slot":
        name, value = expected[1]
        return any(kind == "slot" and got[0] == name and str(got[1]) == str(value) for kind, got in events)
    return expected in events


def _show(event: Event) -> str:
    kind, value = event
    return f"slot {value[0]}={value[1]}" if kind == "slot" else f"{kind} {value}"
