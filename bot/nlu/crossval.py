"""Cross-validated figures of an account's training data, shown beside each model version.

Stratified k-fold: every intent's examples (and the out-of-scope ones) are shuffled and dealt
round-robin into k folds; each fold is predicted by a model trained (and calibrated) on the other
folds. The folds' models are of the kind that will be served: both tiers when the semantic tier
is on (the examples are embedded once, with the cache the training itself then uses, so a fold
costs the fits alone), the lexical tier alone otherwise. Pooled over the folds: accuracy,
per-intent precision / recall / F1, and the most confused (truth, predicted) pairs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from bot.nlu.data import OUT_OF_SCOPE, TrainingData, stratified_folds
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, embed_cached
from bot.nlu.training import TrainingError, TrainOptions, train

FOLDS = 5
INNER_FOLDS = 2  # each fold's model calibrates its threshold on a 2-fold split of its own training part
CONFUSED_PAIRS = 10
TIERS = {True: "both tiers", False: "lexical tier"}


def cross_validate(
    data: TrainingData,
    options: TrainOptions,
    progress: Progress | None = None,
    k: int = FOLDS,
    embedder: Embedder | None = None,
    cache: EmbeddingCache | None = None,
) -> dict[str, object]:
    """The pooled figures (percentages rounded to 0.1) of models like the one ``options`` and
    ``embedder`` train; raises ``TrainingError`` when the data cannot make a model at all."""
    report = progress or (lambda stage, done, total: None)
    semantic = options.semantic and embedder is not None
    folded = replace(options, semantic=semantic, calibration_folds=INNER_FOLDS)
    cache = cache if cache is not None else EmbeddingCache()
    if semantic and embedder is not None:  # once, with progress: the folds and the training reuse them
        embed_cached(embedder, cache, list(dict.fromkeys(e.text for e in data.examples)), report)
    parts = stratified_folds(data.examples, k, options.seed)
    truth: list[str] = []
    guess: list[str] = []
    for n, held in enumerate(parts):
        report("cross-validating", n, len(parts))
        rest = [e for m, part in enumerate(parts) if m != n for e in part]
        try:
            model = train(replace(data, examples=rest), embedder, cache, None, folded)
        except TrainingError:
            continue  # too few intents left in this fold's training part
        texts = [e.text for e in held]
        vectors = embed_cached(embedder, cache, texts) if semantic and embedder is not None else None
        predicted, _ = model.predict(texts, vectors)
        truth += [OUT_OF_SCOPE if e.intent == options.oos_label else e.intent for e in held]
        guess += predicted
    report("cross-validating", len(parts), len(parts))
    if not truth:
        raise TrainingError("too few examples to cross-validate")
    return figures(truth, guess, semantic)


def figures(truth: list[str], guess: list[str], semantic: bool = False) -> dict[str, object]:
    labels = sorted(set(truth) | set(guess))
    per_intent, scores = [], []
    for label in labels:
        tp = sum(1 for t, g in zip(truth, guess) if t == g == label)
        predicted = sum(1 for g in guess if g == label)
        support = sum(1 for t in truth if t == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            scores.append(f1)
            per_intent.append(
                {
                    "intent": label,
                    "precision": _pct(precision),
                    "recall": _pct(recall),
                    "f1": _pct(f1),
                    "support": support,
                }
            )
    confused = Counter((t, g) for t, g in zip(truth, guess) if t != g)
    right = sum(1 for t, g in zip(truth, guess) if t == g)
    return {
        "method": f"stratified {FOLDS}-fold cross-validation, {TIERS[semantic]}",
        "examples": len(truth),
        "accuracy": _pct(right / len(truth)),
        "macro_f1": _pct(sum(scores) / len(scores)),
        "per_intent": per_intent,
        "confused": [
            {"truth": t, "predicted": g, "count": n}
            for (t, g), n in sorted(confused.items(), key=lambda item: (-item[1], item[0]))[:CONFUSED_PAIRS]
        ],
    }


def _pct(value: float) -> float:
    return round(value * 100, 1)
