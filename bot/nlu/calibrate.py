"""Choosing the engine's knobs on calibration data, never on test data.

The tiers are fused as ``w * T * lexical + (1 - w) * semantic`` (class scores, then softmax); a
text is out of scope when its score ``log(top probability) + g * similarity`` falls under a
threshold, where *similarity* is the mean cosine of the text to its nearest training examples.
``(w, T, slope, g)`` come from a small grid and the threshold from the data: the combination
that classifies the calibration set best, counting out-of-scope as one more label (the
"oos-threshold" protocol of Larson et al. 2019). Without out-of-scope examples the threshold is
set so that 95% of the correctly classified calibration texts stay above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

KEEP_WITHOUT_NEGATIVES = 0.95  # share of correct answers kept when no out-of-scope data exists


@dataclass(frozen=True)
class Knobs:
    lex_weight: float
    temperature: float
    slope: float  # pairwise-probability sigmoid slope of the kernel tier
    similarity_weight: float


@dataclass(frozen=True)
class Calibration:
    knobs: Knobs
    threshold: float
    accuracy: float  # on the calibration set, out-of-scope counted as a label
    in_scope_accuracy: float
    oos_recall: float | None


def log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def oos_score(log_proba: np.ndarray, similarity: np.ndarray, weight: float) -> np.ndarray:
    score: np.ndarray = log_proba.max(axis=1) + weight * similarity
    return score


def best_threshold(correct: np.ndarray, is_oos: np.ndarray, score: np.ndarray) -> tuple[float, int]:
    """The threshold maximising right answers (in-scope: right and kept; out-of-scope: rejected),
    and how many that is. Candidates lie between consecutive distinct scores."""
    order = np.argsort(score)
    s, c, o = score[order], correct[order].astype(np.int64), is_oos[order].astype(np.int64)
    # threshold just above s[i]: rejects items 0..i
    kept_correct = c.sum() - np.cumsum(c)
    rejected_oos = np.cumsum(o)
    right = np.concatenate([[c.sum()], kept_correct + rejected_oos])
    # only cut between distinct scores
    valid = np.concatenate([[True], np.append(s[1:] != s[:-1], True)])
    right = np.where(valid, right, -1)
    best = int(np.argmax(right))
    if best == 0:
        return float(s[0]) - 1e-6, int(right[0])
    upper = s[best] if best < len(s) else s[-1] + 1e-3
    cut = (s[best - 1] + upper) / 2 if best < len(s) else s[-1] + 1e-6
    return float(cut), int(right[best])


def choose(
    candidates: Iterable[tuple[Knobs, np.ndarray]],
    labels: np.ndarray,
    similarity: np.ndarray,
    similarity_weights: Iterable[float],
) -> Calibration:
    """Pick the knobs and threshold. ``candidates`` yield (knobs without similarity weight,
    fused log-probabilities); ``labels`` are class indices, -1 for out-of-scope examples."""
    is_oos = labels < 0
    weights = list(similarity_weights) if is_oos.any() else [0.0]
    best: tuple[tuple[float, float], Calibration] | None = None
    for knobs, log_proba in candidates:
        correct = (log_proba.argmax(axis=1) == labels) & ~is_oos
        true_ll = float(np.mean(log_proba[~is_oos, labels[~is_oos]])) if (~is_oos).any() else 0.0
        for weight in weights:
            score = oos_score(log_proba, similarity, weight)
            if is_oos.any():
                threshold, right = best_threshold(correct, is_oos, score)
            else:
                threshold = float(np.quantile(score[correct], 1 - KEEP_WITHOUT_NEGATIVES)) if correct.any() else -np.inf
                right = int(correct.sum())
            rank = (right / len(labels), true_ll)
            if best is None or rank > best[0]:
                kept = score >= threshold
                best = (
                    rank,
                    Calibration(
                        knobs=Knobs(knobs.lex_weight, knobs.temperature, knobs.slope, weight),
                        threshold=threshold,
                        accuracy=right / len(labels),
                        in_scope_accuracy=float((correct & kept).sum() / max((~is_oos).sum(), 1)),
                        oos_recall=float((~kept & is_oos).sum() / is_oos.sum()) if is_oos.any() else None,
                    ),
                )
    assert best is not None, "no candidates"
    return best[1]


def grid(
    lexical: np.ndarray,
    semantic: Callable[[float], np.ndarray] | None,
    temperatures: Iterable[float] = (2.0, 3.0, 5.0),
    lex_weights: Iterable[float] = (0.15, 0.25, 0.35, 0.5),
    slopes: Iterable[float] = (2.0, 4.0, 8.0),
) -> Iterable[tuple[Knobs, np.ndarray]]:
    """Every fusion of the tiers to try; ``semantic(slope)`` gives the kernel tier's
    log-probabilities (``None``: the semantic tier is off, the lexical tier alone is scaled)."""
    temperatures = list(temperatures)
    if semantic is None:
        for t in (*temperatures, 8.0, 12.0):
            yield Knobs(1.0, t, 0.0, 0.0), log_softmax(t * lexical)
        return
    for slope in slopes:
        sem = semantic(slope)
        for t in temperatures:
            for w in lex_weights:
                yield Knobs(w, t, slope, 0.0), log_softmax(w * t * lexical + (1 - w) * sem)
