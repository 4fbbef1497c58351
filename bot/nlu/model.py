"""A trained model of the embedded engine: everything needed to parse a text, as NumPy arrays.

Answering one text: the lexical tier's linear scores over its TF-IDF vector, the semantic
tier's kernel-SVM probabilities over the text's embedding, the two fused and soft-maxed; the
top intent is reported unless the out-of-scope score (top probability and the similarity to the
nearest training examples, the kernel tier's support vectors) falls under the calibrated threshold; two intents too close to tell
apart make the result ambiguous. The model is stored as one ``.npz`` blob (no pickles, so a
model read from the store cannot run code).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.nlu.calibrate import Knobs, log_softmax, oos_score
from bot.nlu.data import OUT_OF_SCOPE, Parse
from bot.nlu.embedder import Embedder, single_threaded_blas
from bot.nlu.entities import EntityExtractor
from bot.nlu.kernel import KernelSvm, pairwise_log_proba
from bot.nlu.lexical import LexicalFeatures

FORMAT = 1
RANKING = 5


@dataclass
class LinearHead:
    """Scores = x @ coef + intercept over sparse lexical vectors; coef stored as float16."""

    coef: np.ndarray  # (n_features, n_outputs)
    intercept: np.ndarray  # (n_outputs,)

    def score(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        scores: np.ndarray = values @ self.coef[index].astype(np.float64) + self.intercept
        return scores

    def score_matrix(self, matrix: Any) -> np.ndarray:
        scores: np.ndarray = np.asarray(matrix @ self.coef.astype(np.float32)) + self.intercept
        return scores


@dataclass
class Components:
    """The per-tier evidence for a batch of texts, before fusion."""

    lexical: np.ndarray  # (n, k) linear scores
    decisions: np.ndarray | None  # (n, k, k) kernel pairwise decisions
    similarity: np.ndarray  # (n,) mean cosine to the nearest support vectors (0 without embeddings)

    def fused(self, knobs: Knobs) -> np.ndarray:
        if self.decisions is None:
            return log_softmax(knobs.temperature * self.lexical)
        sem = pairwise_log_proba(self.decisions, knobs.slope)
        w, t = knobs.lex_weight, knobs.temperature
        return log_softmax(w * t * self.lexical + (1 - w) * sem)


@dataclass
class NluModel:
    classes: list[str]
    lexical: LexicalFeatures
    intent_head: LinearHead
    knobs: Knobs
    threshold: float
    entities: EntityExtractor
    kernel: KernelSvm | None = None
    languages: list[str] = field(default_factory=list)
    language_head: LinearHead | None = None
    ambiguity_margin: float = 0.1
    embedder_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def semantic(self) -> bool:
        return self.kernel is not None

    # --- answering ------------------------------------------------------------------------

    def components(self, texts: list[str], vectors: np.ndarray | None) -> Components:
        lexical = self.intent_head.score_matrix(self.lexical.matrix(texts))
        if self.kernel is None or vectors is None:
            return Components(lexical, None, np.zeros(len(texts)))
        chunks = [self.kernel.decisions(vectors[i : i + 128]) for i in range(0, len(vectors), 128)]
        return Components(lexical, np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))

    def predict(self, texts: list[str], vectors: np.ndarray | None) -> tuple[list[str], np.ndarray]:
        """Intents (``out_of_scope`` where rejected) and top probabilities of a batch."""
        top, rejected, proba = self.decide(texts, vectors)
        return [OUT_OF_SCOPE if r else t for t, r in zip(top, rejected)], proba

    def decide(self, texts: list[str], vectors: np.ndarray | None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """A batch's top intents before rejection (the closed-set answer), whether each is
        rejected as out of scope, and the top probabilities."""
        parts = self.components(texts, vectors)
        log_proba = parts.fused(self.knobs)
        score = oos_score(log_proba, parts.similarity, self.knobs.similarity_weight)
        top = [self.classes[b] for b in log_proba.argmax(axis=1)]
        return top, score < self.threshold, np.exp(log_proba.max(axis=1))

    def parse(self, text: str, embedder: Embedder | None, ambiguity_margin: float | None = None) -> Parse:
        """One text, as the router asks: intent, confidence, ranking, entities, language.
        ``ambiguity_margin`` overrides the one the model was trained with."""
        margin = self.ambiguity_margin if ambiguity_margin is None else ambiguity_margin
        if self.kernel is None or embedder is None:  # no embedding: no OpenMP pool to keep BLAS from
            return self._parse(text, None, margin)
        with single_threaded_blas():
            return self._parse(text, embedder, margin)

    def _parse(self, text: str, embedder: Embedder | None, margin: float) -> Parse:
        index, values = self.lexical.vector(text)
        lexical = self.intent_head.score(index, values)[None, :]
        if self.kernel is not None and embedder is not None:
            decisions, similarity = self.kernel.decisions(embedder.embed([text]))
            parts = Components(lexical, decisions, similarity)
        else:
            parts = Components(lexical, None, np.zeros(1))
        log_proba = parts.fused(self.knobs)[0]
        proba = np.exp(log_proba)
        order = np.argsort(-proba)[:RANKING]
        ranking = tuple((self.classes[i], float(proba[i])) for i in order)
        score = float(oos_score(log_proba[None, :], parts.similarity, self.knobs.similarity_weight)[0])
        rejected = score < self.threshold or not text.strip()
        second = ranking[1][1] if len(ranking) > 1 else 0.0
        return Parse(
            text=text,
            intent=OUT_OF_SCOPE if rejected else ranking[0][0],
            confidence=ranking[0][1],
            entities=self.entities.extract(text),
            ranking=ranking,
            language=self.language(index, values),
            ambiguous=not rejected and ranking[0][1] - second < margin,
            model_version=self.meta.get("version"),
        )

    def language(self, index: np.ndarray, values: np.ndarray) -> str | None:
        if self.language_head is None or not len(index):
            return self.languages[0] if len(self.languages) == 1 else None
        scores = self.language_head.score(index, values)
        if len(self.languages) == 2:  # a binary head has one output: > 0 is the second
            return self.languages[int(scores[0] > 0)]
        return self.languages[int(np.argmax(scores))]

    # --- storage --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "intent_coef": self.intent_head.coef.astype(np.float16),
            "intent_intercept": self.intent_head.intercept,
            **self.lexical.arrays(),
        }
        if self.kernel is not None:
            arrays.update(self.kernel.to_arrays("kernel_"))
        if self.language_head is not None:
            arrays["language_coef"] = self.language_head.coef.astype(np.float16)
            arrays["language_intercept"] = self.language_head.intercept
        doc = {
            "format": FORMAT,
            "classes": self.classes,
            "lexical": self.lexical.to_doc(),
            "knobs": vars(self.knobs),
            "threshold": self.threshold,
            "entities": self.entities.to_doc(),
            "languages": self.languages,
            "ambiguity_margin": self.ambiguity_margin,
            "embedder": self.embedder_name,
            "meta": self.meta,
        }
        arrays["doc"] = np.frombuffer(json.dumps(doc, ensure_ascii=False).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> NluModel:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        doc = json.loads(arrays.pop("doc").tobytes().decode())
        if doc.get("format") != FORMAT:
            raise ValueError(f"model format {doc.get('format')} is not supported (expected {FORMAT})")
        language_head = None
        if "language_coef" in arrays:
            language_head = LinearHead(arrays["language_coef"], arrays["language_intercept"].astype(np.float64))
        return cls(
            classes=list(doc["classes"]),
            lexical=LexicalFeatures.load(doc["lexical"], arrays),
            intent_head=LinearHead(arrays["intent_coef"], arrays["intent_intercept"].astype(np.float64)),
            knobs=Knobs(**doc["knobs"]),
            threshold=float(doc["threshold"]),
            entities=EntityExtractor.from_doc(doc["entities"]),
            kernel=KernelSvm.from_arrays("kernel_", arrays) if "kernel_support" in arrays else None,
            languages=list(doc["languages"]),
            language_head=language_head,
            ambiguity_margin=float(doc["ambiguity_margin"]),
            embedder_name=doc.get("embedder"),
            meta=dict(doc.get("meta", {})),
        )
