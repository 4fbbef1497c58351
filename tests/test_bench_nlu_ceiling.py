"""``bench/nlu_clinc150.py --ceiling``: the best out-of-scope recall per in-scope accuracy is what
trying every threshold on the test set gives (a small lexical model, so it runs in a second)."""

from __future__ import annotations

import numpy as np

from bench.nlu_clinc150 import OOS, ceiling
from bot.nlu.calibrate import oos_score
from bot.nlu.data import Example, TrainingData
from bot.nlu.embedder import EmbeddingCache
from bot.nlu.training import TrainOptions, train

TRAIN = {
    "greet": ["hello", "hi there", "good morning", "hey", "hello friend", "hi"],
    "order": ["where is my order", "track my parcel", "my order has not arrived", "order status please"],
    "hours": ["when do you open", "opening hours", "are you open on sunday", "what time do you close"],
}
TEST = [
    Example("hello there", "greet"),
    Example("hi friend", "greet"),
    Example("good evening", "greet"),
    Example("where is my parcel", "order"),
    Example("has my order shipped", "order"),
    Example("status of my order", "order"),
    Example("are you open today", "hours"),
    Example("closing time", "hours"),
    Example("what time do you open on saturday", "hours"),
    Example("what is the weather like", OOS),
    Example("tell me a joke", OOS),
    Example("play some music", OOS),
    Example("who won the match", OOS),
    Example("what time is the match on", OOS),  # out of scope in in-scope words: a trade-off
    Example("order a pizza for me", OOS),
]


def test_the_ceiling_is_the_best_recall_any_threshold_gives() -> None:
    data = TrainingData([Example(t, intent, language="en") for intent, texts in TRAIN.items() for t in texts])
    model = train(data, None, options=TrainOptions(semantic=False, oos_label=OOS))
    targets = (0.0, 50.0, 70.0, 80.0, 90.0, 100.0)

    found = ceiling(model, TEST, None, EmbeddingCache(), targets)

    parts = model.components([e.text for e in TEST], None)
    log_proba = parts.fused(model.knobs)
    score = oos_score(log_proba, parts.similarity, model.knobs.similarity_weight)
    in_scope = np.array([e.intent != OOS for e in TEST])
    right = np.array([model.classes[i] == e.intent for i, e in zip(log_proba.argmax(axis=1), TEST)])
    outcomes = []  # (in-scope accuracy, out-of-scope recall) of every threshold, all rejected to none
    for threshold in [-np.inf, *np.unique(score), np.inf]:
        kept = score >= threshold
        outcomes.append(
            (100 * (right & kept).sum() / in_scope.sum(), 100 * (~kept & ~in_scope).sum() / (~in_scope).sum())
        )
    for target in targets:
        best = [recall for accuracy, recall in outcomes if accuracy >= target - 1e-9]
        assert found[f"{target:g}"] == (round(max(best), 1) if best else None), target
    assert found["0"] == 100.0  # rejecting everything is allowed at 0 %
    assert any(value is not None and value < 100 for value in found.values())  # a trade-off, not all or nothing
