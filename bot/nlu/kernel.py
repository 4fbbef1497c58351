"""The semantic tier's classifier: an RBF-kernel SVM over sentence embeddings, one-vs-one.

scikit-learn (libsvm) fits it; answering uses only NumPy: the kernel row against the support
vectors, the pairwise decision values, pairwise probabilities through one shared sigmoid, and
the class probabilities coupled from them (Price, Knerr, Personnaz and Dreyfus 1995). The sigmoid's
slope is chosen on calibration data together with the fusion of the tiers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class KernelSvm:
    """Support vectors, their one-vs-one coefficients and the pair intercepts."""

    support: np.ndarray  # (n_sv, dim) float32
    coef: np.ndarray  # (n_classes - 1, n_sv) float32, libsvm's dual_coef_
    intercept: np.ndarray  # (n_pairs,) float64
    counts: np.ndarray  # support vectors per class, in class order
    gamma: float
    _block_cache: list[np.ndarray] | None = field(default=None, repr=False, compare=False)
    _norm_cache: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, c: float = 10.0) -> KernelSvm:
        """``labels`` are class indices 0..k-1 (every class present)."""
        from sklearn.svm import SVC

        gamma = 1.0 / (vectors.shape[1] * float(vectors.var()) or 1.0)  # scikit-learn's "scale"
        svm = SVC(C=c, kernel="rbf", gamma=gamma, decision_function_shape="ovo")
        svm.fit(vectors, labels)
        return cls(
            # stored as float16: round now, so calibration sees what parsing will
            support=svm.support_vectors_.astype(np.float16).astype(np.float32),
            coef=svm.dual_coef_.astype(np.float16).astype(np.float32),
            intercept=svm.intercept_.astype(np.float64),
            counts=svm.n_support_.astype(np.int64),
            gamma=gamma,
        )

    def _blocks(self) -> list[np.ndarray]:
        """Per class, its support vectors' coefficients as a contiguous (n_c, k-1) array."""
        if self._block_cache is None:
            bounds = np.concatenate([[0], np.cumsum(self.counts)])
            self._block_cache = [np.ascontiguousarray(self.coef[:, a:b].T) for a, b in itertools.pairwise(bounds)]
        return self._block_cache

    def _norms(self) -> np.ndarray:
        if self._norm_cache is None:
            self._norm_cache = (self.support**2).sum(1)
        return self._norm_cache

    @property
    def n_classes(self) -> int:
        return len(self.counts)

    def decisions(self, vectors: np.ndarray, neighbours: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(n, k, k) antisymmetric pairwise decision values ([i, j] > 0 favours class i over j),
        and each text's mean cosine to its ``neighbours`` most similar support vectors."""
        k = self.n_classes
        dots = vectors @ self.support.T  # unit vectors: the cosines
        sq = (vectors**2).sum(1)[:, None] + self._norms()[None, :] - 2 * dots
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        bounds = np.concatenate([[0], np.cumsum(self.counts)])
        # part[n, c, m]: what class c's support vectors add to c's duel with its m-th opponent
        # (libsvm orders each vector's k-1 coefficients by opponent, skipping itself)
        part = np.empty((len(vectors), k, k - 1))
        for c, coef in enumerate(self._blocks()):
            part[:, c, :] = kernel[:, bounds[c] : bounds[c + 1]] @ coef
        first, second = np.triu_indices(k, 1)  # libsvm's pair order: (0,1), (0,2), ... (1,2), ...
        value = part[:, first, second - 1] + part[:, second, first] + self.intercept[None, :]
        out = np.zeros((len(vectors), k, k))
        out[:, first, second] = value
        out[:, second, first] = -value
        count = min(neighbours, dots.shape[1])
        similarity = np.partition(dots, dots.shape[1] - count, axis=1)[:, -count:].mean(axis=1)
        return out, similarity.astype(np.float64)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}support": self.support.astype(np.float16),
            f"{prefix}coef": self.coef.astype(np.float16),
            f"{prefix}intercept": self.intercept,
            f"{prefix}counts": self.counts,
            f"{prefix}gamma": np.array([self.gamma]),
        }

    @classmethod
    def from_arrays(cls, prefix: str, arrays: dict[str, Any]) -> KernelSvm:
        return cls(
            support=np.asarray(arrays[f"{prefix}support"], np.float32),
            coef=np.asarray(arrays[f"{prefix}coef"], np.float32),
            intercept=np.asarray(arrays[f"{prefix}intercept"], np.float64),
            counts=np.asarray(arrays[f"{prefix}counts"], np.int64),
            gamma=float(arrays[f"{prefix}gamma"][0]),
        )


def pairwise_log_proba(decisions: np.ndarray, slope: float) -> np.ndarray:
    """Class log-probabilities from pairwise decisions (n, k, k): each duel's probability is a
    sigmoid of its decision value, and the duels are coupled by Price et al.'s formula
    ``p_i = 1 / (sum_{j != i} 1 / r_ij - (k - 2))`` (cheap, and as accurate as the iterative
    couplings on intent data), renormalised."""
    k = decisions.shape[1]
    # 1 / sigmoid(x) = 1 + exp(-x); float32 is plenty and halves the work on big batches
    inverse = (1.0 + np.exp(np.float32(-slope) * decisions.astype(np.float32))).sum(axis=2, dtype=np.float64)
    inverse -= 2.0  # the diagonal (a class against itself) has r = 1/2
    p = np.clip(1.0 / np.maximum(inverse - (k - 2), 1e-12), 1e-12, None)
    log_p: np.ndarray = np.log(p / p.sum(axis=1, keepdims=True))
    return log_p
