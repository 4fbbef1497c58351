"""Training the embedded engine: fit both tiers, then calibrate fusion and thresholds.

Calibration data is the validation set when one is given. Otherwise, with out-of-scope examples,
it is a stratified fifth of the in-scope examples held out beside them (the oos-threshold
protocol: they weigh against a fifth, not against all of the in-scope data, which would outnumber
them and keep nearly everything). Without them every in-scope example is calibration data once,
scored by a model fitted on the other folds of a stratified k-fold split, and the threshold
rejects a stated share of them (``target_rejection``), so it holds on data it was not tuned on.
The model is then refitted on everything with the chosen knobs. Examples labelled out-of-scope
are never a class: they only teach the threshold. Training is CPU work: callers run it in an
executor or a worker process, never on the event loop.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from bot.nlu import calibrate
from bot.nlu.data import OUT_OF_SCOPE, Example, TrainingData, stratified_folds
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, embed_cached
from bot.nlu.entities import EntityExtractor
from bot.nlu.kernel import KernelSvm, pairwise_log_proba
from bot.nlu.lexical import LexicalFeatures
from bot.nlu.model import LinearHead, NluModel

CALIBRATION_FOLDS = 3
HOLDOUT = 0.2  # with out-of-scope examples: the in-scope share that calibrates beside them
LEXICAL_C = 1.0
KERNEL_C = 10.0
SIMILARITY_WEIGHTS = (0.0, 5.0, 10.0, 20.0)
TARGET_REJECTION = 0.01  # chosen by cross-validation on CLINC150's training side: bench/nlu_public.py
EVIDENCE_CHUNK = 256  # calibration texts scored at once: the kernel tier's pairwise array is (n, k, k)


class TrainingError(ValueError):
    """The training data cannot make a model (one line for the user)."""


@dataclass(frozen=True)
class TrainOptions:
    semantic: bool = True
    oos_label: str = OUT_OF_SCOPE
    ambiguity_margin: float = 0.1
    seed: int = 0
    target_rejection: float = TARGET_REJECTION  # in-scope texts rejected, when no out-of-scope examples exist
    calibration_folds: int = CALIBRATION_FOLDS  # without a validation set or out-of-scope examples


@dataclass
class _Fitting:
    """What every fit of one training run shares."""

    classes: list[str]
    vectors: dict[str, np.ndarray]
    extractor: EntityExtractor
    embedder: Embedder | None
    options: TrainOptions
    report: Progress

    def fit(self, examples: list[Example]) -> NluModel:
        return _fit(examples, self.classes, self.vectors, self.extractor, self.embedder, self.options, self.report)


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
    embed = embedder if options.semantic else None
    vectors: dict[str, np.ndarray] = {}
    if embed is not None:
        texts = list(dict.fromkeys(e.text for e in [*data.examples, *(calibration or ())]))
        vectors = dict(zip(texts, embed_cached(embed, cache if cache is not None else EmbeddingCache(), texts, report)))
    fitting = _Fitting(classes, vectors, EntityExtractor.from_training(data), embed, options, report)
    if calibration is not None:
        model = fitting.fit(in_scope)
        evidence = _evidence(model, [*calibration, *negatives], fitting)
    elif negatives:
        model, evidence = _held_out(fitting, in_scope, negatives)
    else:
        evidence = _cross_validated(fitting, in_scope)
        model = fitting.fit(in_scope)
    report("calibrating", 0, len(evidence.labels))
    chosen = calibrate.choose(
        calibrate.grid(evidence.lexical, evidence.semantic.__getitem__ if evidence.semantic else None),
        evidence.labels,
        evidence.similarity,
        SIMILARITY_WEIGHTS,
        options.target_rejection,
    )
    report("calibrating", len(evidence.labels), len(evidence.labels))
    model.knobs, model.threshold = chosen.knobs, chosen.threshold
    model.meta.update(
        {
            "examples": len(in_scope),
            "out_of_scope_examples": len(negatives),
            "calibration_examples": len(evidence.labels),
            "calibration": {
                "method": _method(calibration is not None, bool(negatives), options.calibration_folds),
                **chosen.figures(),
            },
            "train_seconds": round(time.perf_counter() - started, 2),
        }
    )
    report("done", 1, 1)
    return model


@dataclass
class _Evidence:
    """What the calibration texts look like to a model that did not learn them, before fusion."""

    labels: np.ndarray  # class index, -1 for out-of-scope
    lexical: np.ndarray  # (n, k) linear scores
    semantic: dict[float, np.ndarray] | None  # kernel-tier log-probabilities per sigmoid slope
    similarity: np.ndarray  # (n,)

    @classmethod
    def joined(cls, parts: Sequence[_Evidence]) -> _Evidence:
        semantic = None
        if parts[0].semantic is not None:
            semantic = {s: np.concatenate([p.semantic[s] for p in parts if p.semantic]) for s in parts[0].semantic}
        return cls(
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.lexical for p in parts]),
            semantic,
            np.concatenate([p.similarity for p in parts]),
        )


def _evidence(model: NluModel, examples: Sequence[Example], fitting: _Fitting) -> _Evidence:
    """``examples`` scored by ``model``, in chunks (the pairwise decisions never all at once)."""
    index = {name: i for i, name in enumerate(fitting.classes)}
    oos = fitting.options.oos_label
    parts = []
    for at in range(0, len(examples), EVIDENCE_CHUNK):
        chunk = examples[at : at + EVIDENCE_CHUNK]
        vectors = np.stack([fitting.vectors[e.text] for e in chunk]) if fitting.embedder is not None else None
        found = model.components([e.text for e in chunk], vectors)
        decisions = found.decisions
        parts.append(
            _Evidence(
                np.array([-1 if e.intent == oos else index.get(e.intent, -1) for e in chunk]),
                found.lexical,
                None if decisions is None else {s: pairwise_log_proba(decisions, s) for s in calibrate.SLOPES},
                found.similarity,
            )
        )
    if not parts:
        raise TrainingError("no calibration examples")
    return _Evidence.joined(parts)


def _method(validation: bool, negatives: bool, folds: int) -> str:
    if validation:
        return "validation set"
    return "held-out fifth and the out-of-scope examples" if negatives else f"{folds}-fold cross-validation"


def _held_out(fitting: _Fitting, in_scope: list[Example], negatives: list[Example]) -> tuple[NluModel, _Evidence]:
    """The oos-threshold protocol's calibration set: a stratified fifth of the in-scope examples
    beside every out-of-scope one, scored by a model fitted on the rest; then the model of all."""
    fit_set, held = holdout(in_scope, fitting.options.seed)
    model = fitting.fit(fit_set)
    evidence = _evidence(model, [*held, *negatives], fitting)
    return (fitting.fit(in_scope) if held else model), evidence


def holdout(examples: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """A stratified split: a fifth of each intent's examples (none of intents with < 3)."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    fit, held = [], []
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        take = max(int(len(items) * HOLDOUT), 1) if len(items) >= 3 else 0
        held += items[:take]
        fit += items[take:]
    return fit, held


def _cross_validated(fitting: _Fitting, in_scope: list[Example]) -> _Evidence:
    """Every example scored by a model fitted on the folds it is not in."""
    folds = calibration_folds(in_scope, fitting.options.calibration_folds, fitting.options.seed)
    parts = []
    for n, held in enumerate(folds):
        fitting.report("cross-validating", n, len(folds))
        away = {id(e) for e in held}
        rest = [e for e in in_scope if id(e) not in away]
        if held:
            parts.append(_evidence(fitting.fit(rest), held, fitting))
    fitting.report("cross-validating", len(folds), len(folds))
    if not parts:
        raise TrainingError("too few examples to calibrate: give each intent at least two")
    return _Evidence.joined(parts)


def calibration_folds(examples: list[Example], k: int, seed: int) -> list[list[Example]]:
    """A stratified k-fold split where every fold's complement has every intent: an intent's only
    example is never held out."""
    counts = Counter(e.intent for e in examples)
    return stratified_folds([e for e in examples if counts[e.intent] >= 2], k, seed)


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
