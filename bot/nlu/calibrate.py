"""Choosing the engine's knobs on calibration data, never on test data.

The tiers are fused as ``w * T * lexical + (1 - w) * semantic`` (class scores, then softmax); a
text is out of scope when its score ``log(top probability) + g * similarity`` falls under a
threshold, where *similarity* is the mean cosine of the text to its nearest training examples.
``(w, T, slope, g)`` come from a small grid. With out-of-scope examples the threshold comes from
the data: the combination that classifies the calibration set best, counting out-of-scope as one
more label (the "oos-threshold" protocol of Larson et al. 2019). Without them nothing tells a
good threshold from a bad one, so it is set to reject a stated share of the in-scope calibration
texts (the target rejection rate): mostly the ones the model would have got wrong, which are
also the ones least like the training data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

SLOPES = (2.0, 4.0, 8.0)  # pairwise-probability sigmoid slopes of the kernel tier
REJECTION_RATES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1)  # where the calibration's trade-off is shown


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
    closed_set_accuracy: float = 0.0  # the top intent of in-scope texts, rejection ignored
    rejection_rate: float = 0.0  # in-scope calibration texts rejected
    # per rejection rate: its threshold, and the share of in-scope texts answered right or
    # rejected where the top intent was wrong (what a threshold is for without out-of-scope examples)
    trade_off: dict[str, dict[str, float | None]] | None = None

    def figures(self) -> dict[str, object]:
        return {
            "accuracy": round(self.accuracy, 4),
            "in_scope_accuracy": round(self.in_scope_accuracy, 4),
            "oos_recall": None if self.oos_recall is None else round(self.oos_recall, 4),
            "closed_set_accuracy": round(self.closed_set_accuracy, 4),
            "rejection_rate": round(self.rejection_rate, 4),
            "trade_off": self.trade_off,
        }


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
    target_rejection: float,
) -> Calibration:
    """Pick the knobs and threshold. ``candidates`` yield (knobs without similarity weight,
    fused log-probabilities); ``labels`` are class indices, -1 for out-of-scope examples."""
    is_oos = labels < 0
    weights = list(similarity_weights) if is_oos.any() else [0.0]
    best: tuple[tuple[float, float], Knobs, np.ndarray, np.ndarray, float] | None = None
    for knobs, log_proba in candidates:
        top_right = (log_proba.argmax(axis=1) == labels) & ~is_oos
        true_ll = float(np.mean(log_proba[~is_oos, labels[~is_oos]])) if (~is_oos).any() else 0.0
        for weight in weights:
            score = oos_score(log_proba, similarity, weight)
            if is_oos.any():
                threshold, right = best_threshold(top_right, is_oos, score)
            else:
                threshold, right = rejecting(score, target_rejection), int(top_right.sum())
            rank = (right / len(labels), true_ll)
            if best is None or rank > best[0]:
                best = (
                    rank,
                    Knobs(knobs.lex_weight, knobs.temperature, knobs.slope, weight),
                    top_right,
                    score,
                    threshold,
                )
    assert best is not None, "no candidates"
    _, knobs, top_right, score, threshold = best
    kept = score >= threshold
    in_scope = max(int((~is_oos).sum()), 1)
    return Calibration(
        knobs=knobs,
        threshold=threshold,
        accuracy=float(((top_right & kept) | (~kept & is_oos)).sum() / len(labels)),
        in_scope_accuracy=float((top_right & kept).sum() / in_scope),
        oos_recall=float((~kept & is_oos).sum() / is_oos.sum()) if is_oos.any() else None,
        closed_set_accuracy=float(top_right.sum() / in_scope),
        rejection_rate=float((~kept & ~is_oos).sum() / in_scope),
        trade_off=trade_off(top_right[~is_oos], score[~is_oos]),
    )


def rejecting(score: np.ndarray, share: float) -> float:
    """The threshold under which ``share`` of these scores fall."""
    if not len(score) or share <= 0:
        return -np.inf
    return float(np.quantile(score, share))


def trade_off(top_right: np.ndarray, score: np.ndarray) -> dict[str, dict[str, float | None]]:
    """For each of ``REJECTION_RATES``: its threshold, the share of in-scope texts answered right
    ("right"), and answered right or rejected where the answer would have been wrong ("sound")."""
    result: dict[str, dict[str, float | None]] = {}
    for rate in REJECTION_RATES:
        threshold = rejecting(score, rate)
        kept = score >= threshold
        right = float((top_right & kept).mean()) if len(score) else 0.0
        sound = float(((top_right & kept) | (~top_right & ~kept)).mean()) if len(score) else 0.0
        shown = round(threshold, 6) if np.isfinite(threshold) else None  # stays valid JSON
        result[f"{rate:g}"] = {"threshold": shown, "right": round(right, 4), "sound": round(sound, 4)}
    return result


def grid(
    lexical: np.ndarray,
    semantic: Callable[[float], np.ndarray] | None,
    temperatures: Iterable[float] = (2.0, 3.0, 5.0),
    lex_weights: Iterable[float] = (0.15, 0.25, 0.35, 0.5),
    slopes: Iterable[float] = SLOPES,
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
