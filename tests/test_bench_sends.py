"""``bench/sends.py`` runs: each channel's send path, the library's and ours, measured in one run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def test_the_sends_benchmark_measures_both_paths_of_each_channel() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "sends.py"),
        "--sends",
        "40",
        "--rounds",
        "1",
        "--json",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    means = json.loads(out)["means"]
    assert set(means) == {"whatsapp: pywa", "whatsapp: ours", "twilio: the library's client", "twilio: ours"}
    assert all(value > 0 for value in means.values())
