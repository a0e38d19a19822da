"""TF-IDF vectors and sparse dot products for serving, in plain numpy.

scikit-learn fits the vectorizers (at training time only, `TfidfFeatures.from_sklearn`); what
a saved model keeps is the vocabulary, the idf vector and the few options that shape a
vector. Serving never imports scikit-learn or scipy (~100 MB per process), and one short
message's vector costs tens of microseconds instead of sklearn's millisecond per call. The
arithmetic is sklearn's: same n-grams, sublinear tf, idf weighting, l2 norm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

_WHITE = re.compile(r"\s\s+")

Vector = tuple[np.ndarray, np.ndarray]  # (sorted column indices, values)


@lru_cache(maxsize=256)
def char_ngrams(text: str, lo: int, hi: int) -> tuple[str, ...]:
    """The char n-grams scikit-learn's `analyzer="char"` produces (cached: every model of a
    parse asks for the same message's n-grams)."""
    text = _WHITE.sub(" ", text)
    out: list[str] = []
    for n in range(lo, min(hi, len(text)) + 1):
        out.extend(text[i : i + n] for i in range(len(text) - n + 1))
    return tuple(out)


class TfidfFeatures:
    """A fitted TfidfVectorizer reduced to what transforming one document needs.

    `ngram_range` set: the document is a string cut into char n-grams (`analyzer="char"`);
    None: the document is already a token list (an identity analyzer)."""

    __slots__ = ("idf", "ngram_range", "norm", "sublinear_tf", "vocabulary")

    def __init__(
        self,
        vocabulary: dict[str, int],
        idf: np.ndarray | None,
        *,
        ngram_range: tuple[int, int] | None,
        sublinear_tf: bool,
        norm: str | None,
    ) -> None:
        self.vocabulary = vocabulary
        self.idf = idf
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.norm = norm

    @classmethod
    def from_sklearn(cls, vec: TfidfVectorizer) -> TfidfFeatures:
        if vec.analyzer == "char":
            if vec.lowercase or vec.preprocessor is not None or vec.strip_accents is not None:
                raise ValueError("only char n-grams of the text as given are supported")
            ngram_range: tuple[int, int] | None = tuple(vec.ngram_range)  # type: ignore[assignment]
        elif callable(vec.analyzer):
            ngram_range = None
        else:
            raise ValueError(f"unsupported analyzer {vec.analyzer!r}")
        if vec.norm not in ("l2", None) or vec.binary:
            raise ValueError("only l2 / no norm on counts is supported")
        vocabulary = {str(term): int(j) for term, j in vec.vocabulary_.items()}
        idf = np.asarray(vec.idf_, dtype=np.float64).copy() if vec.use_idf else None
        return cls(vocabulary, idf, ngram_range=ngram_range, sublinear_tf=bool(vec.sublinear_tf), norm=vec.norm)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def tokens(self, doc: str | Sequence[str]) -> Sequence[str]:
        if self.ngram_range is not None:
            lo, hi = self.ngram_range
            return char_ngrams(str(doc), lo, hi)
        return doc

    def one(self, doc: str | Sequence[str]) -> Vector:
        """(sorted column indices, values) of one document's TF-IDF vector."""
        vocab = self.vocabulary
        counts: dict[int, int] = {}
        for tok in self.tokens(doc):
            j = vocab.get(tok)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        idx = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        tf = np.array([counts[j] for j in idx], dtype=np.float64)
        if self.sublinear_tf:
            tf = 1.0 + np.log(tf)
        if self.idf is not None:
            tf *= self.idf[idx]
        if self.norm == "l2":
            norm = math.sqrt(float(tf @ tf))
            if norm > 0:
                tf /= norm
        return idx, tf


def sparse_dot(a: Vector, b: Vector) -> float:
    """Dot product of two sparse vectors, summed in index order (as scipy's csr product does)."""
    _, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    total = 0.0
    for x, y in zip(a[1][ia].tolist(), b[1][ib].tolist(), strict=True):
        total += x * y
    return total


class Inverted:
    """Term -> rows posting lists of a (rows x terms) matrix: dot products with one sparse
    query in plain numpy (scipy's per-call overhead dominates for one short message)."""

    __slots__ = ("data", "indices", "indptr", "n_rows")

    def __init__(self, rows: Any) -> None:
        """`rows`: a scipy sparse matrix (training time; the index keeps numpy arrays only)."""
        t = rows.tocsc()  # column j's row indices and values, rows in order
        t.sort_indices()
        self.indptr = np.asarray(t.indptr)
        self.indices = np.asarray(t.indices)
        self.data = np.asarray(t.data, dtype=np.float64)
        self.n_rows = int(rows.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def dot(self, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
        if len(idx) == 0:
            return np.zeros(self.n_rows)
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        parts_i = [self.indices[s:e] for s, e in zip(starts, ends, strict=True)]
        parts_w = [self.data[s:e] * v for s, e, v in zip(starts, ends, vals, strict=True)]
        return np.bincount(np.concatenate(parts_i), weights=np.concatenate(parts_w), minlength=self.n_rows)
