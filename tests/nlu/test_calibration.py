"""Thresholds that hold on data they were not tuned on: calibrated on cross-validated in-scope
confidences of the training data, at a stated rejection rate (real training, lexical tier)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from bot.nlu.data import Example, TrainingData
from bot.nlu.evaluate import train_and_evaluate
from bot.nlu.training import TrainOptions, calibration_folds, train
from tests.nlu.test_evaluate import clinc20


@pytest.mark.parametrize(("target", "low", "high"), [(0.03, 0.005, 0.07), (0.1, 0.05, 0.16)])
def test_held_out_in_scope_texts_are_rejected_near_the_target_rate(target: float, low: float, high: float) -> None:
    training, held_out = clinc20()  # no out-of-scope examples to train on
    in_scope = [e for e in held_out if e.intent != "oos"]
    options = TrainOptions(semantic=False, oos_label="oos", target_rejection=target)
    model, report = train_and_evaluate(training, in_scope, None, None, options)
    assert low <= report.rejection_rate <= high
    assert model.meta["calibration"]["method"] == "3-fold cross-validation"
    assert model.meta["calibration"]["rejection_rate"] == pytest.approx(target, abs=0.01)
    assert model.meta["calibration_examples"] == len(training.examples)  # every example calibrates once


def test_a_higher_target_rejects_more_and_catches_out_of_scope_texts() -> None:
    training, held_out = clinc20()
    figures = []
    for target in (0.0, 0.05, 0.2):
        options = TrainOptions(semantic=False, oos_label="oos", target_rejection=target)
        figures.append(train_and_evaluate(training, held_out, None, None, options)[1])
    assert figures[0].rejection_rate == 0 and figures[0].oos_recall == 0
    assert figures[0].rejection_rate < figures[1].rejection_rate < figures[2].rejection_rate
    assert figures[0].oos_recall < figures[1].oos_recall < figures[2].oos_recall  # type: ignore[operator]
    assert len({f.closed_set_accuracy for f in figures}) == 1  # the threshold never changes the top intent


def test_the_trade_off_of_each_rejection_rate_is_kept_with_the_model() -> None:
    training, _ = clinc20()
    model = train(training, None, None, None, TrainOptions(semantic=False, oos_label="oos"))
    trade_off = model.meta["calibration"]["trade_off"]
    assert trade_off["0"]["threshold"] is None  # rejecting nothing: no threshold (and valid JSON)
    thresholds = [row["threshold"] for rate, row in trade_off.items() if rate != "0"]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    assert all(0.5 < row["sound"] <= 1 for row in trade_off.values())


def test_out_of_scope_examples_set_the_threshold_against_an_in_scope_fifth() -> None:
    """Beside all the training data's in-scope texts, a few out-of-scope ones hardly weigh: the
    threshold would keep nearly everything. Calibrated against a held-out fifth (the protocol of
    Larson et al. 2019), it catches most unseen out-of-scope texts (5-fold evidence: 24 of 40)."""
    training, held_out = clinc20()
    oos = [e for e in held_out if e.intent == "oos"]
    in_scope = [e for e in held_out if e.intent != "oos"]
    caught, right = 0, 0.0
    for taught, unseen in ((oos[:20], oos[20:]), (oos[20:], oos[:20])):
        data = replace(training, examples=[*training.examples, *taught])
        options = TrainOptions(semantic=False, oos_label="oos")
        model, report = train_and_evaluate(data, [*in_scope, *unseen], None, None, options)
        assert model.meta["calibration"]["method"] == "held-out fifth and the out-of-scope examples"
        assert model.meta["calibration_examples"] == len(training.examples) // 5 + len(taught)
        caught += round((report.oos_recall or 0) * len(unseen))
        right += report.in_scope_accuracy / 2
    assert caught >= 27 and right >= 0.95


def test_every_fold_leaves_every_intent_to_learn_from() -> None:
    examples = [
        Example(f"{intent} {n}", intent) for intent, count in (("a", 1), ("b", 2), ("c", 7)) for n in range(count)
    ]
    folds = calibration_folds(examples, 5, seed=0)
    held = [e for fold in folds for e in fold]
    assert Counter(e.intent for e in held) == {"b": 2, "c": 7}  # an intent's only example is never held out
    for fold in folds:
        rest = [e for e in examples if e not in fold]
        assert {e.intent for e in rest} == {"a", "b", "c"}
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


def test_intents_with_two_examples_train_and_calibrate() -> None:
    data = TrainingData(
        [
            Example("when do you open", "hours"),
            Example("opening hours please", "hours"),
            Example("do you deliver", "delivery"),
            Example("how long is shipping", "delivery"),
            Example("hello", "greet"),
        ]
    )
    model = train(data, None, None, None, TrainOptions(semantic=False))
    assert model.classes == ["delivery", "greet", "hours"] and model.meta["calibration_examples"] == 4
    assert model.predict(["when do you open"], None)[0] == ["hours"]
