"""Fuzzing run over every channel's parser: N hostile cases per channel from the strategies of the
property tests (recorded payloads mutated, arbitrary JSON or forms, arbitrary bytes, hostile mail),
and mails mixing charsets as real mail programs label them (``email-charsets``: each case must also
read back exactly as its sender wrote it).

    PYTHONPATH=. .venv/bin/python bench/fuzz.py [--cases 100000] [--channels telegram,whatsapp,...]

For each channel it prints the cases run, cases per second, how the parser answered (accepted,
refused as malformed, set aside as unsupported), and any failure: a case for which the parser raised
something else (a 500 in the router) or produced an event the store cannot hold, shrunk by
Hypothesis to a minimal example. Exit status 1 when any channel failed.

Every channel's cases include long texts (``strategies.long_texts``: thousands of characters of
punctuation, repeated words, Cyrillic, emoji, arbitrary code points). ``--channels nlu`` runs them
through the part of the NLU that reads them (``bot.nlu.prefix`` with the real engine's tokenizer):
a failure is a prefix that is not one, or holds more than ``nlu.max_tokens`` tokens.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings

from bench.progress import Progress
from bot.nlu.embedder import default_embedder
from bot.nlu.prefix import nlu_prefix
from bot.settings import Settings
from tests.hostile import strategies
from tests.hostile.charset_mails import CharsetMix, assert_reads_back, charset_mixes
from tests.hostile.parsers import Parsers

CHANNELS = ("webchat", "telegram", "whatsapp", "sms", "voice", "email", "email-charsets", "nlu")


class NluPrefix:
    """The NLU's bounded prefix of a long text, checked with the real engine's tokenizer."""

    def __init__(self) -> None:
        self.max_tokens = Settings().nlu.max_tokens
        self.count = default_embedder().token_count

    def check(self, text: str) -> str:
        prefix = nlu_prefix(text, self.max_tokens, self.count)
        if not text.startswith(prefix) or self.count(prefix) > self.max_tokens:
            raise AssertionError(f"a prefix of {self.count(prefix)} tokens read from {len(text)} characters")
        return "cut" if len(prefix) < len(text) else "whole"


def fuzz(parsers: Parsers, channel: str, cases: int, batch: int = 5_000) -> tuple[Counter[str], float, str | None]:
    """Run ``cases`` cases against one parser, in runs of ``batch`` (Hypothesis keeps every case
    of a run in memory and slows down as a run grows); (outcomes, seconds, first failure or None)."""
    outcomes: Counter[str] = Counter()
    prefix = NluPrefix() if channel == "nlu" else None
    if prefix is not None:
        source = strategies.long_texts()
    elif channel == "webchat":
        source = strategies.webchat_bodies(parsers.visitor_token)
    elif channel == "email-charsets":
        source = charset_mixes()
    else:
        source = strategies.CHANNEL_BODIES[channel]()

    def check(case: Any) -> None:
        if prefix is not None:
            outcomes[prefix.check(case)] += 1
        elif isinstance(case, CharsetMix):
            outcomes[parsers.check("email", case.raw)] += 1
            assert_reads_back(case)
        else:
            outcomes[parsers.check(channel, case)] += 1

    started, progress = time.perf_counter(), Progress(channel, cases)  # a long run shows how far it got
    while (done := sum(outcomes.values())) < cases:
        run = settings(
            max_examples=min(batch, cases - sum(outcomes.values())),
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )(given(case=source)(check))
        try:
            run()
        except Exception:  # a parser bug, shrunk to its smallest case by Hypothesis
            return outcomes, time.perf_counter() - started, traceback.format_exc(limit=-4)
        progress.advance(sum(outcomes.values()) - done)
    return outcomes, time.perf_counter() - started, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases per channel (default 100,000)")
    parser.add_argument("--channels", default=",".join(CHANNELS), help="comma-separated channels")
    args = parser.parse_args()
    parsers = Parsers()
    failed = False
    print(f"{'channel':14} {'cases':>8} {'seconds':>8} {'cases/s':>8}  outcomes")
    for channel in args.channels.split(","):
        outcomes, seconds, failure = fuzz(parsers, channel, args.cases)
        total = sum(outcomes.values())
        shares = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
        print(f"{channel:14} {total:8d} {seconds:8.1f} {total / seconds:8.0f}  {shares}", flush=True)
        if failure:
            failed = True
            print(f"FAILURE in {channel}:\n{failure}", flush=True)
    print("no failures" if not failed else "failures found (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
