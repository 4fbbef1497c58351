"""aiogram imported with its models built on first use: nothing is built at import, and every
recorded update and a keyboard reply validate and serialise exactly as with aiogram's own eager
import (both run in fresh interpreters, since aiogram is imported once per process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
if sys.argv[1] == "lazy":
    from bot.handlers.telegram.aiogram_lazy import import_aiogram_lazily
    import_aiogram_lazily()
import aiogram.types as types
from aiogram.methods import SendMessage
from aiogram.types import Update, InlineKeyboardMarkup, InlineKeyboardButton, ReplyKeyboardMarkup, KeyboardButton

models = [getattr(types, name) for name in types.__all__ if hasattr(getattr(types, name), "model_fields")]
built_at_import = sum(1 for model in models if model.__pydantic_complete__)
out = [Update.model_validate_json(open(path).read()).model_dump_json(exclude_none=True) for path in sys.argv[2:]]
inline = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="yes")]])
reply = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="No")]], one_time_keyboard=True)
out += [repr(SendMessage(chat_id=7, text="hi", reply_markup=markup)) for markup in (inline, reply)]
print(json.dumps({"built_at_import": built_at_import, "models": len(models), "out": out}))
"""


def probe(mode: str) -> dict[str, object]:
    fixtures = sorted(str(p) for p in (Path(__file__).resolve().parent / "fixtures").glob("*.json"))
    done = subprocess.run([sys.executable, "-c", PROBE, mode, *fixtures], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_models_are_built_on_first_use_and_behave_as_with_the_eager_import() -> None:
    lazy, eager = probe("lazy"), probe("eager")
    assert lazy["built_at_import"] == 0 and eager["built_at_import"] == eager["models"]
    assert isinstance(lazy["out"], list) and len(lazy["out"]) == 14
    assert lazy["out"] == eager["out"]
