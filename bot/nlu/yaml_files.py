"""Reading the bot's YAML files (responses, dialogue domain and rules, test stories): a file that is
not YAML, or not a mapping at its top, is refused with its path and what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path, error: type[ValueError], shape: str) -> Mapping[str, Any]:
    """The file's top-level mapping; ``error`` naming the file otherwise (``shape`` says what it
    should be, e.g. "with `intents:`")."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise error(f"{path}: must be a mapping {shape}")
    return raw
