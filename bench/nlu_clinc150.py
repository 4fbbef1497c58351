"""The NLU engine on CLINC150 ("full"), by the standard protocol of Larson et al. 2019.

Trains on the 15,000 in-scope training queries, picks every threshold on the validation set
(3,000 in-scope + 100 out-of-scope queries), and reports on the test set (4,500 + 1,000):
in-scope accuracy (a query predicted out-of-scope counts as wrong), out-of-scope recall, cold
training time (nothing cached), the time to retrain after adding 10 examples (embeddings
cached), and single-utterance predict latency. ``--max-tokens N`` has the model read only the
first N tokens of each test query, as the router does (``nlu.max_tokens``, ``bot.nlu.prefix``);
the report gives the longest query of the data set, in tokens and characters, beside it.

``--ceiling`` adds how far the out-of-scope threshold alone could go with this model: for each of
a few in-scope accuracies, the best out-of-scope recall of a threshold chosen *on the test set
itself*. No protocol allows that choice, so it is an upper bound, not a result: when it falls
short of a goal, no calibration can reach the goal and the model's top intents (the closed-set
accuracy) have to get better first.

    .venv/bin/python bench/nlu_clinc150.py [--data PATH] [--json] [--no-semantic] [--embeddings FILE.npz]
        [--max-tokens N] [--ceiling]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nlu_public import CLINC150, load_embeddings, progress_printer, save_embeddings
from bot.nlu.calibrate import oos_score
from bot.nlu.data import Example, TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, default_embedder, embed_cached
from bot.nlu.evaluate import evaluate
from bot.nlu.model import NluModel
from bot.nlu.prefix import nlu_prefix
from bot.nlu.training import TrainOptions, train

DEFAULT_DATA = CLINC150
OOS = "oos"
IN_SCOPE_ACCURACIES = (96.0, 96.2, 96.3, 96.4, 96.5)


def ceiling(
    model: NluModel,
    test: list[Example],
    embedder: Embedder | None,
    cache: EmbeddingCache,
    targets: tuple[float, ...] = IN_SCOPE_ACCURACIES,
) -> dict[str, float | None]:
    """Per in-scope accuracy (percent), the best out-of-scope recall of any threshold on the
    model's out-of-scope score, the threshold chosen on ``test`` itself (``None``: unreachable)."""
    texts = [e.text for e in test]
    vectors = embed_cached(embedder, cache, texts) if embedder is not None and model.semantic else None
    parts = model.components(texts, vectors)
    log_proba = parts.fused(model.knobs)
    score = oos_score(log_proba, parts.similarity, model.knobs.similarity_weight)
    index = {name: i for i, name in enumerate(model.classes)}
    labels = np.array([index.get(e.intent, -1) for e in test])  # out of scope: -1
    in_scope = labels >= 0
    right = (log_proba.argmax(axis=1) == labels) & in_scope
    order = np.argsort(score)  # cut i rejects the i lowest scores: only between two distinct ones
    sorted_score = score[order]
    cuts = np.concatenate([[True], sorted_score[1:] != sorted_score[:-1], [True]])
    kept_right = right.sum() - np.concatenate([[0], np.cumsum(right[order])])
    rejected_oos = np.concatenate([[0], np.cumsum(~in_scope[order])])
    accuracy = 100 * kept_right / in_scope.sum()
    recall = 100 * rejected_oos / max(int((~in_scope).sum()), 1)
    found: dict[str, float | None] = {}
    for target in targets:
        reachable = cuts & (accuracy >= target - 1e-9)
        found[f"{target:g}"] = round(float(recall[reachable].max()), 1) if reachable.any() else None
    return found


def load(path: Path) -> dict[str, list[Example]]:
    raw = json.loads(path.read_text())
    return {
        split: [Example(text, intent, language="en") for text, intent in raw[split]]
        for split in ("train", "val", "test", "oos_val", "oos_test")
    }


def longest(splits: dict[str, list[Example]]) -> dict[str, int]:
    """The longest query of the data set, in the engine's tokens (specials included) and characters."""
    texts = [e.text for split in splits.values() for e in split]
    count = default_embedder().token_count
    return {"longest_query_tokens": max(map(count, texts)), "longest_query_chars": max(map(len, texts))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CLINC150 data_full.json")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-semantic", action="store_true", help="the lexical tier alone")
    parser.add_argument(
        "--embeddings", type=Path, help="an .npz of embeddings to start from and keep (reruns skip embedding)"
    )
    parser.add_argument("--max-tokens", type=int, help="the model reads this many tokens of a test query")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="add the best out-of-scope recall per in-scope accuracy, the threshold chosen on the test set (a bound)",
    )
    args = parser.parse_args()
    if not args.data.exists():
        print(f"nlu_clinc150: {args.data} not found (see --data)", file=sys.stderr)
        return 2
    splits = load(args.data)
    options = TrainOptions(semantic=not args.no_semantic, oos_label=OOS)
    embedder = None if args.no_semantic else default_embedder()
    cache = load_embeddings(args.embeddings)
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    validation = splits["val"] + splits["oos_val"]

    started = time.perf_counter()
    model = train(TrainingData(splits["train"]), embedder, cache, validation, options, progress_printer(log))
    cold = time.perf_counter() - started

    added = [Example(f"{e.text} please", e.intent, language="en") for e in splits["train"][::1500][:10]]
    started = time.perf_counter()
    train(TrainingData(splits["train"] + added), embedder, cache, validation, options)
    warm = time.perf_counter() - started

    test = splits["test"] + splits["oos_test"]
    if args.max_tokens:
        count = default_embedder().token_count if embedder is not None else None
        test = [Example(nlu_prefix(e.text, args.max_tokens, count), e.intent, language="en") for e in test]
    report = evaluate(model, test, embedder, oos_label=OOS, train_seconds=cold, cache=cache)
    bound = ceiling(model, test, embedder, cache) if args.ceiling else None
    if args.embeddings and embedder is not None:
        everything = [e.text for split in splits.values() for e in split]
        save_embeddings(args.embeddings, cache, embedder, everything)
    result = {
        **report.as_dict(),
        "retrain_seconds_after_10_examples": round(warm, 1),
        "semantic": not args.no_semantic,
        "max_tokens": args.max_tokens,
        **longest(splits),
        "calibration": model.meta.get("calibration"),
        "knobs": vars(model.knobs),
    }
    if bound is not None:
        result["oos_recall_ceiling_by_in_scope_accuracy"] = bound
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
