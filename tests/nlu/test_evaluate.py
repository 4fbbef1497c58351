"""What ``omnirouter nlu eval`` reports, on a small slice of CLINC150 (real training, lexical tier)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.nlu.data import Example, TrainingData
from bot.nlu.evaluate import evaluate, train_and_evaluate
from bot.nlu.formats import load_paths
from bot.nlu.model import NluModel
from bot.nlu.training import TrainOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nlu"
LEXICAL = TrainOptions(semantic=False, oos_label="oos", target_rejection=0.05)  # enough to cost some right answers


def clinc20() -> tuple[TrainingData, list[Example]]:
    """20 intents x 30 training queries; held out: 20 x 20 in-scope and 40 out-of-scope queries."""
    return load_paths([FIXTURES / "clinc20.train.jsonl"]), load_paths([FIXTURES / "clinc20.held_out.jsonl"]).examples


@pytest.fixture(scope="module")
def trained() -> tuple[NluModel, list[Example]]:
    training, held_out = clinc20()
    model, _ = train_and_evaluate(training, held_out, None, None, LEXICAL)
    return model, held_out


def test_closed_set_accuracy_and_rejection_rate_separate_what_rejection_costs(
    trained: tuple[NluModel, list[Example]],
) -> None:
    model, held_out = trained
    report = evaluate(model, held_out, None, oos_label="oos")
    in_scope = [e for e in held_out if e.intent != "oos"]
    predicted, _ = model.predict([e.text for e in in_scope], None)
    rejected = sum(p == "out_of_scope" for p in predicted) / len(in_scope)
    assert report.rejection_rate == pytest.approx(rejected)
    assert 0 < report.rejection_rate < 0.5
    # rejection only takes answers away: the closed set is right at least as often, and the gap
    # is made of rejected texts
    assert report.in_scope_accuracy < report.closed_set_accuracy <= report.in_scope_accuracy + report.rejection_rate
    assert report.closed_set_accuracy > 0.85
    figures = report.as_dict()
    assert figures["closed_set_accuracy"] == round(report.closed_set_accuracy * 100, 2)
    assert figures["rejection_rate"] == round(report.rejection_rate * 100, 2)


def test_the_closed_set_ignores_the_threshold(trained: tuple[NluModel, list[Example]]) -> None:
    model, held_out = trained
    before = evaluate(model, held_out, None, oos_label="oos")
    threshold = model.threshold
    try:
        model.threshold = -np.inf  # nothing rejected
        open_door = evaluate(model, held_out, None, oos_label="oos")
        model.threshold = np.inf  # everything rejected
        closed_door = evaluate(model, held_out, None, oos_label="oos")
    finally:
        model.threshold = threshold
    assert open_door.rejection_rate == 0 and open_door.in_scope_accuracy == open_door.closed_set_accuracy
    assert closed_door.rejection_rate == 1 and closed_door.in_scope_accuracy == 0 and closed_door.oos_recall == 1
    assert before.closed_set_accuracy == open_door.closed_set_accuracy == closed_door.closed_set_accuracy
