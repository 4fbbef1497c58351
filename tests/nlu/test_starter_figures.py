"""The starter data looks trustworthy on first open: the figures the training page shows for it —
cross-validated with models like the one served (both tiers) — reach 90 %."""

from __future__ import annotations

from dataclasses import replace

from bot.nlu.crossval import cross_validate
from bot.nlu.embedder import EmbeddingCache, default_embedder
from bot.nlu.formats import load_paths
from bot.nlu.training import TrainOptions
from tests.nlu.conftest import ROOT


def test_the_starter_data_cross_validates_at_90_percent_with_the_served_model() -> None:
    data = load_paths([ROOT / "config" / "nlu"])
    cache = EmbeddingCache()
    served = cross_validate(data, TrainOptions(), embedder=default_embedder(), cache=cache)
    assert served["method"] == "stratified 5-fold cross-validation, both tiers"
    assert served["accuracy"] >= 90.0 and served["macro_f1"] >= 90.0, served
    out_of_scope = next(row for row in served["per_intent"] if row["intent"] == "out_of_scope")  # type: ignore[attr-defined]
    assert out_of_scope["precision"] >= 60.0, out_of_scope
    # with the semantic tier off the figures are the lexical tier's, and say so
    lexical = cross_validate(data, replace(TrainOptions(), semantic=False))
    assert lexical["method"] == "stratified 5-fold cross-validation, lexical tier"
    assert lexical["accuracy"] < served["accuracy"]  # type: ignore[operator]
