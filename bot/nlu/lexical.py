"""The lexical tier's features: TF-IDF over word 1-2-grams and character 2-5-grams.

Training fits the vocabularies and IDF weights with scikit-learn; answering a single text uses
only NumPy (the vectors are computed here, exactly as scikit-learn computes them), so a router
process that only parses never imports scikit-learn.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

_WORD = re.compile(r"(?u)\b\w+\b")
_SPACES = re.compile(r"\s\s+")


def word_ngrams(text: str) -> list[str]:
    """Lower-cased words and word pairs (single-letter words count: "a", "į", "я")."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def char_ngrams(text: str, low: int = 2, high: int = 5) -> list[str]:
    """Character n-grams inside word boundaries, padded with spaces (scikit-learn's char_wb)."""
    grams: list[str] = []
    for word in _SPACES.sub(" ", text.lower()).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if n > len(padded):
                break
            grams += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return grams


ANALYZERS: dict[str, Callable[[str], list[str]]] = {"word": word_ngrams, "char": char_ngrams}


@dataclass
class TfidfSpace:
    """One analyzer's vocabulary and IDF weights; vectors are sublinear-tf * idf, L2-normalised."""

    analyzer: str
    vocabulary: dict[str, int]
    idf: np.ndarray
    offset: int = 0  # where this space starts in the concatenated feature vector

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        counts = Counter(ANALYZERS[self.analyzer](text))
        pairs = [(self.vocabulary[g], c) for g, c in counts.items() if g in self.vocabulary]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        index = np.fromiter((i for i, _ in pairs), np.int64, len(pairs))
        tf = np.fromiter((1.0 + math.log(c) for _, c in pairs), np.float64, len(pairs))
        values = tf * self.idf[index]
        values /= np.linalg.norm(values)
        return index + self.offset, values


@dataclass
class LexicalFeatures:
    """The concatenation of the word and character spaces."""

    spaces: list[TfidfSpace]

    @property
    def size(self) -> int:
        last = self.spaces[-1]
        return last.offset + len(last.vocabulary)

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[LexicalFeatures, csr_matrix]:
        """Vocabularies and IDF weights from ``texts``, and the texts' own feature matrix."""
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        min_df = 2 if len(texts) >= 2000 else 1  # rare n-grams only add noise to large sets
        spaces, blocks, offset = [], [], 0
        for name in ("word", "char"):
            vectorizer = TfidfVectorizer(
                analyzer=ANALYZERS[name], sublinear_tf=True, min_df=min_df if name == "char" else 1
            )
            blocks.append(vectorizer.fit_transform(texts))
            vocabulary = {str(g): int(i) for g, i in vectorizer.vocabulary_.items()}
            spaces.append(TfidfSpace(name, vocabulary, vectorizer.idf_.astype(np.float64), offset))
            offset += len(vocabulary)
        return cls(spaces), hstack(blocks, format="csr")

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (indices, values) of one text."""
        parts = [space.vector(text) for space in self.spaces]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def matrix(self, texts: Sequence[str]) -> csr_matrix:
        from scipy.sparse import csr_matrix

        indptr, indices, values = [0], [], []
        for text in texts:
            index, value = self.vector(text)
            indices.append(index)
            values.append(value)
            indptr.append(indptr[-1] + len(index))
        return csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, np.int64),
                indptr,
            ),
            shape=(len(texts), self.size),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "spaces": [
                {
                    "analyzer": s.analyzer,
                    "offset": s.offset,
                    "grams": sorted(s.vocabulary, key=s.vocabulary.__getitem__),
                }
                for s in self.spaces
            ]
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"idf_{s.analyzer}": s.idf.astype(np.float32) for s in self.spaces}

    @classmethod
    def load(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> LexicalFeatures:
        spaces = [
            TfidfSpace(
                item["analyzer"],
                {gram: i for i, gram in enumerate(item["grams"])},
                arrays[f"idf_{item['analyzer']}"].astype(np.float64),
                int(item["offset"]),
            )
            for item in doc["spaces"]
        ]
        return cls(spaces)
