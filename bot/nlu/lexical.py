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

    def __post_init__(self) -> None:
        # read per n-gram as Python floats, without a copy (a list would hold 32 bytes an n-gram)
        self.idf = np.ascontiguousarray(self.idf, np.float64)
        self._weights = self.idf.data

    def terms(self, text: str) -> tuple[list[int], list[float]]:
        """This space's part of the vector of ``text``: indices (with the offset) and values, in
        plain Python: a text has tens of n-grams, too few for NumPy's per-call cost to pay."""
        get, weights, offset = self.vocabulary.get, self._weights, self.offset
        index: list[int] = []
        values: list[float] = []
        for gram, count in Counter(ANALYZERS[self.analyzer](text)).items():
            i = get(gram)
            if i is not None:
                index.append(i + offset)
                values.append((1.0 + math.log(count)) * weights[i])
        if values:
            norm = math.sqrt(math.fsum(v * v for v in values))
            values = [v / norm for v in values]
        return index, values


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
        index: list[int] = []
        values: list[float] = []
        for space in self.spaces:
            i, v = space.terms(text)
            index += i
            values += v
        return np.array(index, np.int64), np.array(values, np.float64)

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
