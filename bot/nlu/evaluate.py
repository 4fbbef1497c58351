"""Evaluating a trained model: accuracy, in-scope accuracy, out-of-scope recall, macro F1 and
single-utterance latency, the way ``omnirouter nlu eval`` and ``bench/nlu_clinc150.py`` report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.nlu.data import OUT_OF_SCOPE, Example
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, embed_cached
from bot.nlu.model import NluModel

LATENCY_SAMPLE = 300


@dataclass(frozen=True)
class Report:
    accuracy: float
    in_scope_accuracy: float
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
    predicted, _ = model.predict(texts, vectors)
    truth = [oos_label if e.intent in (oos_label, OUT_OF_SCOPE) else e.intent for e in test]
    guess = [oos_label if p == OUT_OF_SCOPE else p for p in predicted]
    right = np.array([t == g for t, g in zip(truth, guess)])
    is_oos = np.array([t == oos_label for t in truth])
    p50, p99 = latency(model, texts, embedder if model.semantic else None, latency_sample)
    return Report(
        accuracy=float(right.mean()) if len(right) else 0.0,
        in_scope_accuracy=float(right[~is_oos].mean()) if (~is_oos).any() else 0.0,
        oos_recall=float(right[is_oos].mean()) if is_oos.any() else None,
        macro_f1=macro_f1(truth, guess),
        train_seconds=train_seconds,
        predict_ms_p50=p50,
        predict_ms_p99=p99,
        examples=len(test),
    )


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
