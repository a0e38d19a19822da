"""Intent classification: char 1-2-grams + jieba words + part-of-speech n-grams, linear SVM.

Why these features: on short Chinese queries character bigrams carry most of the signal,
words add the segmentation, and the POS sequence generalises over names the training data
never saw (place names for weather/transport, person names for music/poetry, ...). A
temperature softmax over the SVM margins gives a confidence in 0..1 and a ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from nlu.text import Tokenizer
from nlu.vectors import sparse_one, transform_one

TEMPERATURE = 4.0  # softmax sharpness over SVM margins (margins are ~[-1.5, 1.5])
WORD_WEIGHT = 0.8


class Analyzed:
    """A normalised text with its tokens, computed once per message and shared by the models."""

    __slots__ = ("norm", "tagged", "words")

    def __init__(self, norm: str, tokenizer: Tokenizer) -> None:
        self.norm = norm
        self.tagged = tokenizer.tagged(norm)
        self.words = [w for w, _ in self.tagged]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _pos_features(tagged: list[tuple[str, str]]) -> list[str]:
    tags = [tag for _, tag in tagged]
    return [f"t:{t}" for t in tags] + [f"t2:{a}_{b}" for a, b in pairwise(tags)]


def _vectorizer(**kw: object) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, **kw)  # type: ignore[arg-type]


class IntentClassifier:
    def __init__(self) -> None:
        self.char = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=False)
        self.word = _vectorizer()
        self.pos = _vectorizer()
        self.svm = LinearSVC(C=1.0)
        self.classes: list[str] = []
        self._single: str | None = None

    def _matrix(self, docs: Sequence[Analyzed], fit: bool) -> sparse.csr_matrix:
        norms = [d.norm for d in docs]
        words = [d.words for d in docs]
        tags = [_pos_features(d.tagged) for d in docs]
        if fit:
            parts = [
                self.char.fit_transform(norms),
                self.word.fit_transform(words) * WORD_WEIGHT,
                self.pos.fit_transform(tags),
            ]
        else:
            if len(docs) == 1:  # the hot path: one message
                parts = [
                    transform_one(self.char, norms[0]),
                    transform_one(self.word, words[0]) * WORD_WEIGHT,
                    transform_one(self.pos, tags[0]),
                ]
            else:
                parts = [self.char.transform(norms), self.word.transform(words) * WORD_WEIGHT, self.pos.transform(tags)]
        return sparse.hstack(parts, format="csr")

    def _one(self, doc: Analyzed) -> tuple[np.ndarray, np.ndarray]:
        offsets = (0, len(self.char.vocabulary_), len(self.char.vocabulary_) + len(self.word.vocabulary_))
        parts = [
            sparse_one(self.char, doc.norm),
            sparse_one(self.word, doc.words),
            sparse_one(self.pos, _pos_features(doc.tagged)),
        ]
        weights = (1.0, WORD_WEIGHT, 1.0)
        idx = np.concatenate([i + off for (i, _), off in zip(parts, offsets, strict=True)])
        vals = np.concatenate([v * w for (_, v), w in zip(parts, weights, strict=True)])
        return idx, vals

    def fit(self, docs: Sequence[Analyzed], labels: Sequence[str]) -> IntentClassifier:
        self.classes = sorted(set(labels))
        if len(self.classes) == 1:  # an SVM needs two classes; one intent is always that intent
            self._single = self.classes[0]
            return self
        self.svm.fit(self._matrix(docs, fit=True), list(labels))
        self.classes = [str(c) for c in self.svm.classes_]
        return self

    def scores(self, docs: Sequence[Analyzed]) -> np.ndarray:
        """Probabilities (rows sum to 1) over `self.classes`."""
        if self._single is not None or not self.classes:
            return np.ones((len(docs), max(1, len(self.classes))))
        if len(docs) == 1:  # one message: gather the touched coefficient columns, no scipy
            idx, vals = self._one(docs[0])
            margins = (self.svm.coef_[:, idx] @ vals + self.svm.intercept_)[None, :]
        else:
            margins = np.asarray(self._matrix(docs, fit=False) @ self.svm.coef_.T) + self.svm.intercept_
        if margins.shape[1] == 1:
            margins = margins[:, 0]
        if margins.ndim == 1:  # binary: sklearn returns the margin of classes[1]
            margins = np.stack([-margins, margins], axis=1)
        z = margins * TEMPERATURE
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def rank(self, doc: Analyzed, k: int = 5) -> list[tuple[str, float]]:
        probs = self.scores([doc])[0]
        order = np.argsort(-probs)[:k]
        return [(self.classes[i], float(probs[i])) for i in order]

    def predict(self, docs: Sequence[Analyzed]) -> list[str]:
        probs = self.scores(docs)
        return [self.classes[i] for i in probs.argmax(axis=1)]
