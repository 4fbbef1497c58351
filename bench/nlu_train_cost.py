"""What training costs beyond the embeddings: ``train()`` on small sets with every embedding cached.

Two sets: the starter data (``config/nlu``, with out-of-scope examples: a held-out fifth
calibrates) and the 20-intent CLINC150 slice of the tests (no out-of-scope examples: the
threshold is cross-validated), each with both tiers and with the lexical tier alone; the slice
also at every fold count given. Prints the best of ``--repeat`` runs, wall and process CPU
seconds (CPU counts both cores' work and is steadier when other jobs share the machine).

    .venv/bin/python bench/nlu_train_cost.py [--folds 3 5] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.nlu.data import TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, default_embedder
from bot.nlu.formats import load_paths
from bot.nlu.training import CALIBRATION_FOLDS, TrainOptions, train

ROOT = Path(__file__).resolve().parents[1]


def measure(data: TrainingData, embedder: Embedder | None, options: TrainOptions, repeat: int) -> dict[str, object]:
    cache = EmbeddingCache()
    model = train(data, embedder, cache, None, options)  # fills the cache
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        model = train(data, embedder, cache, None, options)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "calibration": model.meta["calibration"]["method"],
        "wall_s": round(min(walls), 2),
        "cpu_s": round(min(cpus), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[CALIBRATION_FOLDS], help="fold counts to compare")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.repeat < 1 or min(args.folds) < 2:
        print("nlu_train_cost: --repeat needs at least 1 and --folds at least 2", file=sys.stderr)
        return 2
    starter = load_paths([ROOT / "config" / "nlu"])
    clinc20 = load_paths([ROOT / "tests" / "fixtures" / "nlu" / "clinc20.train.jsonl"])
    embedder = default_embedder()
    rows: list[dict[str, object]] = []
    for semantic in (True, False):
        tier = "both tiers" if semantic else "lexical"
        options = TrainOptions(semantic=semantic)
        rows.append({"data": "starter", "tier": tier, **measure(starter, embedder, options, args.repeat)})
        for folds in args.folds:
            folded = replace(options, calibration_folds=folds)
            rows.append({"data": "clinc20", "tier": tier, **measure(clinc20, embedder, folded, args.repeat)})
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(
                "  ".join(f"{value!s:14s}" if key != "calibration" else f"{value!s:46s}" for key, value in row.items())
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
