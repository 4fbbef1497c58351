"""The NLU engine on a public intent set it was not tuned on, beside an e5 + logistic regression baseline.

The protocol of a set without out-of-scope training data (Banking77, HWU64): train on the
published training split alone — every threshold cross-validated on it at ``--target-rejection``
— and report on the published test split through ``omnirouter nlu eval``'s code path
(``train_and_evaluate``): closed-set accuracy (top intent, no rejection, what published figures
measure), accuracy with rejection, rejection rate, out-of-scope recall when the test split has
out-of-scope texts, macro F1, training seconds and single-utterance predict p50. The baseline,
measured in the same run: scikit-learn's LogisticRegression on the same multilingual-e5-small
embeddings our embedder computes, its C chosen on a stratified fifth of the training split.
Also printed: the calibration's trade-off per rejection rate (cross-validated on the training
split), from which ``nlu.target_rejection``'s default is chosen.

Default data: CLINC150 "full" (its 150 in-scope intents; its validation split is not used).
Other sets: ``--train FILE --test FILE`` in a format ``omnirouter nlu eval`` reads (JSONL, Rasa YAML).

    .venv/bin/python bench/nlu_public.py [--train FILE --test FILE] [--folds K] [--no-semantic] [--no-baseline] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.nlu.calibrate import oos_score
from bot.nlu.data import Example, TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, default_embedder, embed_cached, text_key
from bot.nlu.evaluate import evaluate, macro_f1, train_and_evaluate
from bot.nlu.formats import NluFormatError, load_paths
from bot.nlu.model import NluModel
from bot.nlu.training import CALIBRATION_FOLDS, TARGET_REJECTION, TrainOptions

ROOT = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout (or beside the folder of worktrees)
CLINC150 = next(
    (p for p in (d / "shared/datasets/clinc150/data_full.json" for d in ROOT.parents) if p.exists()),
    ROOT.parent / "shared/datasets/clinc150/data_full.json",
)
OOS = "oos"
BASELINE_C = (1.0, 10.0, 100.0)
VALIDATION_MIX = 30  # CLINC150's validation split: 3,000 in-scope and 100 out-of-scope queries


def clinc150(path: Path) -> tuple[TrainingData, list[Example], list[Example]]:
    """The in-scope training split, the test split, and the out-of-scope training queries
    (kept out of training: only the choice of the default rejection rate reads them)."""
    raw = json.loads(path.read_text())
    test = [Example(text, intent, language="en") for text, intent in raw["test"] + raw["oos_test"]]
    negatives = [Example(text, OOS, language="en") for text, _ in raw["oos_train"]]
    return TrainingData([Example(text, intent, language="en") for text, intent in raw["train"]]), test, negatives


def rejection_rates(
    model: NluModel, negatives: list[Example], embedder: Embedder | None, cache: EmbeddingCache
) -> dict[str, dict[str, float]]:
    """Per candidate rate, from the training side alone: the cross-validated in-scope accuracy
    with rejection, the out-of-scope training queries' recall under that rate's threshold, and
    accuracy with out-of-scope as one more label at CLINC150's validation mix (1 in 31)."""
    vectors = embed_cached(embedder, cache, [e.text for e in negatives]) if embedder and model.semantic else None
    parts = model.components([e.text for e in negatives], vectors)
    score = oos_score(parts.fused(model.knobs), parts.similarity, model.knobs.similarity_weight)
    table = {}
    for rate, row in model.meta["calibration"]["trade_off"].items():
        threshold = -np.inf if row["threshold"] is None else row["threshold"]
        recall = float((score < threshold).mean())
        right = float(row["right"])
        table[rate] = {
            "cv_in_scope_accuracy": round(100 * right, 2),
            "oos_train_recall": round(100 * recall, 2),
            "mixed_accuracy": round(100 * (VALIDATION_MIX * right + recall) / (VALIDATION_MIX + 1), 2),
        }
    return table


def baseline(train: list[Example], test: list[Example], embedder: Embedder, cache: EmbeddingCache) -> dict[str, float]:
    """e5 embeddings + logistic regression: closed-set accuracy and macro F1 on the in-scope test texts."""
    from sklearn.linear_model import LogisticRegression

    x = embed_cached(embedder, cache, [e.text for e in train])
    y = np.array([e.intent for e in train])
    fit, held = _fifth(y)
    started = time.perf_counter()
    scores = {}
    for c in BASELINE_C:
        model = LogisticRegression(C=c, max_iter=2000).fit(x[fit], y[fit])
        scores[c] = float((model.predict(x[held]) == y[held]).mean())
    chosen = max(scores, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=chosen, max_iter=2000).fit(x, y)
    seconds = time.perf_counter() - started
    in_scope = [e for e in test if e.intent != OOS]
    guess = list(model.predict(embed_cached(embedder, cache, [e.text for e in in_scope])))
    truth = [e.intent for e in in_scope]
    return {
        "closed_set_accuracy": round(100 * float(np.mean([t == g for t, g in zip(truth, guess)])), 2),
        "macro_f1": round(100 * macro_f1(truth, guess), 2),
        "c": chosen,
        "train_seconds_embeddings_cached": round(seconds, 1),
    }


def test_by_rate(
    model: NluModel, test: list[Example], embedder: Embedder | None, cache: EmbeddingCache
) -> dict[str, dict[str, object]]:
    """The test figures at each candidate rate's threshold (shown, never used to choose one)."""
    table = {}
    chosen = model.threshold
    try:
        for rate, row in model.meta["calibration"]["trade_off"].items():
            model.threshold = -np.inf if row["threshold"] is None else row["threshold"]
            figures = evaluate(model, test, embedder, oos_label=OOS, cache=cache, latency_sample=1).as_dict()
            table[rate] = {k: figures[k] for k in ("in_scope_accuracy", "rejection_rate", "oos_recall")}
    finally:
        model.threshold = chosen
    return table


def _fifth(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified 80/20 split (every fifth example of each label held out)."""
    seen: dict[str, int] = defaultdict(int)
    held = np.zeros(len(labels), bool)
    for i, label in enumerate(labels):
        held[i] = seen[label] % 5 == 4
        seen[label] += 1
    return np.flatnonzero(~held), np.flatnonzero(held)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, help="training split (default: CLINC150's)")
    parser.add_argument("--test", type=Path, help="test split (default: CLINC150's)")
    parser.add_argument("--clinc150", type=Path, default=CLINC150, help="CLINC150 data_full.json")
    parser.add_argument("--target-rejection", type=float, default=TARGET_REJECTION)
    parser.add_argument(
        "--folds", type=int, default=CALIBRATION_FOLDS, help="cross-validation folds of the calibration"
    )
    parser.add_argument("--no-semantic", action="store_true", help="the lexical tier alone (no baseline)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the e5 + logistic regression baseline")
    parser.add_argument(
        "--embeddings", type=Path, help="an .npz of embeddings to start from and keep (reruns skip embedding)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.folds < 2:
        return _fail("--folds needs at least 2")
    if bool(args.train) != bool(args.test):
        return _fail("give both --train and --test")
    if not args.train and not args.clinc150.exists():
        return _fail(f"{args.clinc150} not found (see --clinc150, or give --train and --test)")
    negatives: list[Example] = []
    try:
        if args.train:
            training, test = load_paths([args.train]), load_paths([args.test]).examples
        else:
            training, test, negatives = clinc150(args.clinc150)
    except NluFormatError as exc:
        return _fail(str(exc))
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    embedder = None if args.no_semantic else default_embedder()
    cache = load_embeddings(args.embeddings)
    options = TrainOptions(
        semantic=embedder is not None,
        oos_label=OOS,
        target_rejection=args.target_rejection,
        calibration_folds=args.folds,
    )
    model, report = train_and_evaluate(training, test, embedder, None, options, progress_printer(log), cache)
    result: dict[str, object] = {
        "data": str(args.train or args.clinc150.name),
        "intents": len(model.classes),
        **report.as_dict(),
        "target_rejection": args.target_rejection,
        "knobs": vars(model.knobs),
        "calibration": model.meta["calibration"],
    }
    if negatives:
        result["rejection_rates"] = rejection_rates(model, negatives, embedder, cache)
        result["test_by_rate"] = test_by_rate(model, test, embedder, cache)
    if embedder is not None and not args.no_baseline:
        log("  baseline: e5 + logistic regression")
        result["e5_logistic_regression"] = baseline(training.examples, test, embedder, cache)
    if args.embeddings and embedder is not None:
        save_embeddings(args.embeddings, cache, embedder, [e.text for e in [*training.examples, *test]])
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    return 0


def load_embeddings(path: Path | None) -> EmbeddingCache:
    cache = EmbeddingCache(limit=1_000_000)
    if path is not None and path.exists():
        with np.load(path) as stored:
            cache.put_many(dict(zip(stored["keys"].tolist(), stored["vectors"])), new=False)
    return cache


def save_embeddings(path: Path, cache: EmbeddingCache, embedder: Embedder, texts: list[str]) -> None:
    if cache.take_added():
        vectors = cache.get_many([text_key(embedder.name, t) for t in texts])
        np.savez(path, keys=np.array(list(vectors)), vectors=np.stack(list(vectors.values())))


def progress_printer(log):  # type: ignore[no-untyped-def]
    """A training progress callback that prints a stage when it starts, ends, or every 10 s."""
    last = {"stage": None, "at": 0.0}

    def report(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != last["stage"] or now - last["at"] > 10 or done == total:
            log(f"  {stage}: {done}/{total}")
            last["stage"], last["at"] = stage, now

    return report


def _fail(problem: str) -> int:
    print(f"nlu_public: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
