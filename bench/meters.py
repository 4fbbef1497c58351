"""What the load benchmark reads from the processes it runs: the routers' /metrics (store round
trips, decisions, sends) and /proc (CPU seconds, peak RSS)."""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from pathlib import Path

import aiohttp

from tests.faults.harness import Router


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if not line.startswith("#"):
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def metric(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(prefix))


class Meters:
    """Store commands, outbound sends (from /metrics) and CPU (from /proc) of the routers."""

    def __init__(self, routers: list[Router]) -> None:
        self.routers = routers
        self.scrapes = 0

    async def read(self) -> dict[str, float]:
        total: dict[str, float] = defaultdict(float)
        async with aiohttp.ClientSession() as session:
            for router in self.routers:
                for key, value in (await scrape(session, router.url)).items():
                    total[key] += value
                self.scrapes += 1
        return total

    def cpu(self) -> float:
        return sum(cpu_seconds(r.pid) for r in self.routers if r.pid)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the machine's cores ran anything, since boot (/proc/stat: user, nice, system,
    irq and softirq; not idle, iowait, or steal, the hypervisor's; guest time is inside user)."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | None) -> float:
    with contextlib.suppress(OSError, ValueError, TypeError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def store_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((data_dir / "nx-27017.pid").read_text())
    return None
