"""Reading the bot's YAML files (responses, dialogue domain and rules, test stories) and their
copies edited in the console: a text that is not YAML, or not a mapping at its top, is refused
with where it came from and what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path, error: type[ValueError], shape: str) -> Mapping[str, Any]:
    """The file's top-level mapping; ``error`` naming the file otherwise (``shape`` says what it
    should be, e.g. "with `intents:`")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    return parse_mapping(text, str(path), error, shape)


def parse_mapping(text: str, where: str, error: type[ValueError], shape: str) -> Mapping[str, Any]:
    """``text``'s top-level mapping; ``error`` naming ``where`` otherwise."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise error(f"{where}: must be a mapping {shape}")
    return raw
