"""Training the embedded engine: fit both tiers, then calibrate fusion and thresholds.

Calibration data is the validation set when one is given, otherwise a stratified fifth of the
training examples held out (the model is then refitted on everything with the chosen knobs).
Examples labelled out-of-scope are never a class: they only teach the threshold. Training is
CPU work: callers run it in an executor or a worker process, never on the event loop.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from bot.nlu import calibrate
from bot.nlu.data import OUT_OF_SCOPE, Example, TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, embed_cached
from bot.nlu.entities import EntityExtractor
from bot.nlu.kernel import KernelSvm, pairwise_log_proba
from bot.nlu.lexical import LexicalFeatures
from bot.nlu.model import LinearHead, NluModel

HOLDOUT = 0.2
LEXICAL_C = 1.0
KERNEL_C = 10.0
SIMILARITY_WEIGHTS = (0.0, 5.0, 10.0, 20.0)


class TrainingError(ValueError):
    """The training data cannot make a model (one line for the user)."""


@dataclass(frozen=True)
class TrainOptions:
    semantic: bool = True
    oos_label: str = OUT_OF_SCOPE
    ambiguity_margin: float = 0.1
    seed: int = 0


def train(
    data: TrainingData,
    embedder: Embedder | None,
    cache: EmbeddingCache | None = None,
    calibration: Sequence[Example] | None = None,
    options: TrainOptions = TrainOptions(),
    progress: Progress | None = None,
) -> NluModel:
    """A calibrated model from ``data`` (``embedder`` is ignored when ``options.semantic`` is off)."""
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    in_scope = [e for e in data.examples if e.intent != options.oos_label]
    negatives = [e for e in data.examples if e.intent == options.oos_label]
    classes = sorted({e.intent for e in in_scope})
    if len(classes) < 2:
        raise TrainingError(f"need examples of at least two intents, got {len(classes)}")
    if calibration is None:
        fit_set, held = _holdout(in_scope, options.seed)
        cal_set = held + negatives
    else:
        fit_set, cal_set = in_scope, [*calibration, *negatives]
    embed = embedder if options.semantic else None
    cache = cache if cache is not None else EmbeddingCache()
    vectors: dict[str, np.ndarray] = {}
    if embed is not None:
        texts = list(dict.fromkeys(e.text for e in [*in_scope, *cal_set]))
        vectors = dict(zip(texts, embed_cached(embed, cache, texts, report)))
    extractor = EntityExtractor.from_training(data)
    model = _fit(fit_set, classes, vectors, extractor, embed, options, report)
    report("calibrating", 0, len(cal_set))
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index.get(e.intent, -1) if e.intent != options.oos_label else -1 for e in cal_set])
    cal_vectors = np.stack([vectors[e.text] for e in cal_set]) if embed is not None and cal_set else None
    parts = model.components([e.text for e in cal_set], cal_vectors)
    decisions = parts.decisions
    semantic = None if decisions is None else (lambda slope: pairwise_log_proba(decisions, slope))
    chosen = calibrate.choose(calibrate.grid(parts.lexical, semantic), labels, parts.similarity, SIMILARITY_WEIGHTS)
    report("calibrating", len(cal_set), len(cal_set))
    if calibration is None and len(fit_set) < len(in_scope):
        report("refitting", 0, 1)
        model = _fit(in_scope, classes, vectors, extractor, embed, options, report)
    model.knobs, model.threshold = chosen.knobs, chosen.threshold
    model.meta.update(
        {
            "examples": len(in_scope),
            "out_of_scope_examples": len(negatives),
            "calibration_examples": len(cal_set),
            "calibration": {
                "accuracy": round(chosen.accuracy, 4),
                "in_scope_accuracy": round(chosen.in_scope_accuracy, 4),
                "oos_recall": None if chosen.oos_recall is None else round(chosen.oos_recall, 4),
            },
            "train_seconds": round(time.perf_counter() - started, 2),
        }
    )
    report("done", 1, 1)
    return model


def _holdout(examples: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """A stratified split: a fifth of each intent's examples (none of intents with < 3)."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    fit, held = [], []
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        take = int(len(items) * HOLDOUT) if len(items) >= 3 else 0
        held += items[: max(take, 1 if len(items) >= 3 else 0)]
        fit += items[max(take, 1 if len(items) >= 3 else 0) :]
    return fit, held


def _fit(
    examples: list[Example],
    classes: list[str],
    vectors: dict[str, np.ndarray],
    extractor: EntityExtractor,
    embedder: Embedder | None,
    options: TrainOptions,
    report: Progress,
) -> NluModel:
    from sklearn.svm import LinearSVC

    texts = [e.text for e in examples]
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[e.intent] for e in examples])
    report("fitting", 0, 1)
    with ThreadPoolExecutor(1) as pool:  # both fits leave the GIL: the kernel tier on a second core
        kernel = None
        if embedder is not None:
            kernel_fit = pool.submit(KernelSvm.fit, np.stack([vectors[t] for t in texts]), labels, KERNEL_C)
        lexical, matrix = LexicalFeatures.fit(texts)
        svc = LinearSVC(C=LEXICAL_C, random_state=0).fit(matrix, labels)
        intent_head = _head(svc.coef_, svc.intercept_)
        languages = sorted({e.language for e in examples if e.language})
        language_head = None
        if len(languages) > 1:
            tagged = [i for i, e in enumerate(examples) if e.language]
            lang_svc = LinearSVC(C=LEXICAL_C, random_state=0).fit(
                matrix[tagged], [examples[i].language for i in tagged]
            )
            language_head = _head(lang_svc.coef_, lang_svc.intercept_)
        if embedder is not None:
            kernel = kernel_fit.result()
    report("fitting", 1, 1)
    return NluModel(
        classes=classes,
        lexical=lexical,
        intent_head=intent_head,
        knobs=calibrate.Knobs(1.0, 1.0, 0.0, 0.0),
        threshold=-np.inf,
        entities=extractor,
        kernel=kernel,
        languages=languages,
        language_head=language_head,
        ambiguity_margin=options.ambiguity_margin,
        embedder_name=getattr(embedder, "name", None),
    )


def _head(coef: np.ndarray, intercept: np.ndarray) -> LinearHead:
    """A linear head with float16 weights (as stored), so calibration sees what parsing will."""
    weights = np.asarray(coef).T.astype(np.float16)
    return LinearHead(weights, np.asarray(intercept, np.float64))
