"""Sentiment (positive probability) and anger/urgency (0..1) for complaint triage.

Both are linear models over char 1-2-grams and jieba words, trained on data: the default
model on the small seed set that ships in `config/nlu/sentiment.yml` (written for Huike, not
copied from any corpus), and a brand can retrain on its own labelled reviews/messages
(`huike nlu eval-sentiment` shows what such data buys). Anger adds a few cues a linear model
on a small seed set cannot learn reliably (exclamation runs, repeated question marks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.vectors import sparse_one, transform_one

_EXCLAIM_RE = re.compile(r"[!！]{2,}|[?？]{2,}|[!！][?？]|[?？][!！]")


def _identity(tokens: list[str]) -> list[str]:
    return tokens


class BinaryTextModel:
    """P(label = 1 | text) from char 1-2-grams + words, logistic regression."""

    def __init__(self, c: float = 4.0) -> None:
        self.char = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=False, max_features=200_000
        )
        self.word = TfidfVectorizer(analyzer=_identity, ngram_range=(1, 1), sublinear_tf=True, max_features=100_000)
        self.model = LogisticRegression(C=c, max_iter=2000, solver="liblinear")
        self.fitted = False

    def _matrix(self, norms: Sequence[str], words: Sequence[list[str]], fit: bool) -> sparse.csr_matrix:
        if fit:
            return sparse.hstack([self.char.fit_transform(norms), self.word.fit_transform(words)], format="csr")
        if len(norms) == 1:  # the hot path: one message, without scikit-learn's per-call overhead
            return sparse.hstack([transform_one(self.char, norms[0]), transform_one(self.word, words[0])], format="csr")
        return sparse.hstack([self.char.transform(norms), self.word.transform(words)], format="csr")

    def fit(self, norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int]) -> BinaryTextModel:
        if len(set(labels)) < 2:
            raise ValueError("a binary text model needs examples of both labels")
        self.model.fit(self._matrix(norms, words, fit=True), np.array(labels))
        self.fitted = True
        return self

    def prob(self, norms: Sequence[str], words: Sequence[list[str]]) -> np.ndarray:
        if not self.fitted:
            return np.full(len(norms), 0.5)
        if len(norms) == 1:
            (ci, cv), (wi, wv) = sparse_one(self.char, norms[0]), sparse_one(self.word, words[0])
            coef = self.model.coef_[0]
            off = len(self.char.vocabulary_)
            z = np.array([coef[ci] @ cv + coef[wi + off] @ wv + self.model.intercept_[0]])
        else:
            x = self._matrix(norms, words, fit=False)
            z = np.asarray(x @ self.model.coef_.T).ravel() + self.model.intercept_[0]
        return 1.0 / (1.0 + np.exp(-z))


def anger_cues(text: str) -> float:
    """0..1 boost from punctuation runs that signal agitation in chat messages."""
    return 0.15 if _EXCLAIM_RE.search(text) else 0.0


class AffectModel:
    """Sentiment and anger together; both optional (an untrained part answers neutral)."""

    def __init__(self) -> None:
        self.sentiment = BinaryTextModel()
        self.anger = BinaryTextModel(c=2.0)

    def fit(self, sentiment: Sequence[tuple[str, list[str], int]], anger: Sequence[tuple[str, list[str], int]]) -> None:
        if sentiment:
            self.sentiment.fit([n for n, _, _ in sentiment], [w for _, w, _ in sentiment], [y for *_, y in sentiment])
        if anger:
            self.anger.fit([n for n, _, _ in anger], [w for _, w, _ in anger], [y for *_, y in anger])

    def predict(self, norm: str, words: list[str]) -> tuple[float, float]:
        """(P(positive), anger 0..1) of one normalised message."""
        pos = float(self.sentiment.prob([norm], [words])[0])
        anger = float(self.anger.prob([norm], [words])[0]) if self.anger.fitted else 0.0
        return pos, min(1.0, anger + anger_cues(norm))
