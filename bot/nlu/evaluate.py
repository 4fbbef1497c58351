"""Evaluating a trained model the way ``omnirouter nlu eval`` and the benchmarks report.

Two views of the in-scope test texts: *closed-set accuracy* is the top intent alone, rejection
ignored (what published intent-classification figures on Banking77, HWU64 and CLINC150's
in-scope part measure), and *in-scope accuracy* counts a text rejected as out of scope as wrong
(what a customer sees); the *rejection rate* is the share of in-scope texts rejected, the gap
between the two. Besides: accuracy over every label, out-of-scope recall, macro F1, training time
and single-utterance latency.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.nlu.data import OUT_OF_SCOPE, Example, TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, embed_cached
from bot.nlu.model import NluModel
from bot.nlu.training import TrainOptions, train

LATENCY_SAMPLE = 300


@dataclass(frozen=True)
class Report:
    accuracy: float
    in_scope_accuracy: float
    closed_set_accuracy: float  # top intent of in-scope texts, rejection ignored
    rejection_rate: float  # in-scope texts rejected as out of scope
    oos_recall: float | None
    macro_f1: float
    train_seconds: float
    predict_ms_p50: float
    predict_ms_p99: float
    examples: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "accuracy": round(self.accuracy * 100, 2),
            "in_scope_accuracy": round(self.in_scope_accuracy * 100, 2),
            "closed_set_accuracy": round(self.closed_set_accuracy * 100, 2),
            "rejection_rate": round(self.rejection_rate * 100, 2),
            "oos_recall": None if self.oos_recall is None else round(self.oos_recall * 100, 2),
            "macro_f1": round(self.macro_f1 * 100, 2),
            "train_seconds": round(self.train_seconds, 1),
            "predict_ms_p50": round(self.predict_ms_p50, 2),
            "predict_ms_p99": round(self.predict_ms_p99, 2),
            "examples": self.examples,
        }


def evaluate(
    model: NluModel,
    test: Sequence[Example],
    embedder: Embedder | None,
    *,
    oos_label: str = OUT_OF_SCOPE,
    train_seconds: float = 0.0,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    latency_sample: int = LATENCY_SAMPLE,
) -> Report:
    texts = [e.text for e in test]
    vectors = None
    if model.semantic and embedder is not None:
        vectors = embed_cached(embedder, cache or EmbeddingCache(), texts, progress)
    top, rejected, _ = model.decide(texts, vectors)
    truth = [oos_label if e.intent in (oos_label, OUT_OF_SCOPE) else e.intent for e in test]
    guess = [oos_label if r else t for t, r in zip(top, rejected)]
    right = np.array([t == g for t, g in zip(truth, guess)])
    is_oos = np.array([t == oos_label for t in truth])
    top_right = np.array([t == g for t, g in zip(truth, top)])
    p50, p99 = latency(model, texts, embedder if model.semantic else None, latency_sample)
    return Report(
        accuracy=float(right.mean()) if len(right) else 0.0,
        in_scope_accuracy=_share(right, ~is_oos),
        closed_set_accuracy=_share(top_right, ~is_oos),
        rejection_rate=_share(rejected, ~is_oos),
        oos_recall=float(right[is_oos].mean()) if is_oos.any() else None,
        macro_f1=macro_f1(truth, guess),
        train_seconds=train_seconds,
        predict_ms_p50=p50,
        predict_ms_p99=p99,
        examples=len(test),
    )


def train_and_evaluate(
    training: TrainingData,
    test: Sequence[Example],
    embedder: Embedder | None,
    validation: Sequence[Example] | None,
    options: TrainOptions,
    progress: Progress | None = None,
    cache: EmbeddingCache | None = None,
) -> tuple[NluModel, Report]:
    """``omnirouter nlu eval``: train on ``training`` (thresholds from ``validation`` or, without
    it, cross-validated on the training data), then report on ``test``."""
    cache = cache if cache is not None else EmbeddingCache()
    started = time.perf_counter()
    model = train(training, embedder, cache, validation, options, progress)
    seconds = time.perf_counter() - started
    report = evaluate(model, test, embedder, oos_label=options.oos_label, train_seconds=seconds, cache=cache)
    return model, report


def _share(flags: np.ndarray, among: np.ndarray) -> float:
    return float(flags[among].mean()) if among.any() else 0.0


def macro_f1(truth: Sequence[str], guess: Sequence[str]) -> float:
    labels = sorted(set(truth))
    scores = []
    for label in labels:
        tp = sum(1 for t, g in zip(truth, guess) if t == label and g == label)
        fp = sum(1 for t, g in zip(truth, guess) if t != label and g == label)
        fn = sum(1 for t, g in zip(truth, guess) if t == label and g != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def latency(model: NluModel, texts: Sequence[str], embedder: Embedder | None, sample: int) -> tuple[float, float]:
    """p50 and p99 of parsing one text at a time (embedding included, nothing cached), in ms."""
    if not texts:
        return 0.0, 0.0
    step = max(1, len(texts) // sample)
    chosen = list(texts[::step])[:sample]
    model.parse(chosen[0], embedder)  # warm-up: first touches of the model's memory
    times = []
    for text in chosen:
        started = time.perf_counter()
        model.parse(text, embedder)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))
