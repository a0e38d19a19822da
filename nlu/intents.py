"""Intent classification: char 1-2-grams + jieba words + part-of-speech n-grams, linear SVM.

Why these features: on short Chinese queries character bigrams carry most of the signal,
words add the segmentation, and the POS sequence generalises over names the training data
never saw (place names for weather/transport, person names for music/poetry, ...). A
temperature softmax over the SVM margins gives a confidence in 0..1 and a ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from nlu.text import Tokenizer
from nlu.vectors import TfidfFeatures

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

TEMPERATURE = 4.0  # softmax sharpness over SVM margins (margins are ~[-1.5, 1.5])
WORD_WEIGHT = 0.8
BLOCK_WEIGHTS = (1.0, WORD_WEIGHT, 1.0)  # char n-grams, words, POS features


class Analyzed:
    """A normalised text with its tokens, computed once per message and shared by the models."""

    __slots__ = ("norm", "tagged", "words")

    def __init__(self, norm: str, tokenizer: Tokenizer) -> None:
        self.norm = norm
        self.tagged = tokenizer.tagged(norm)
        self.words = [w for w, _ in self.tagged]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def pos_features(tagged: list[tuple[str, str]]) -> list[str]:
    tags = [tag for _, tag in tagged]
    return [f"t:{t}" for t in tags] + [f"t2:{a}_{b}" for a, b in pairwise(tags)]


def _blocks(doc: Analyzed) -> tuple[str, list[str], list[str]]:
    """The three views of a message the three feature blocks are built from."""
    return doc.norm, doc.words, pos_features(doc.tagged)


def fit_estimators(docs: Sequence[Analyzed], labels: Sequence[str]) -> tuple[list[TfidfVectorizer], LinearSVC, Any]:
    """scikit-learn's vectorizers (char 1-2-grams, words, POS) and linear SVM fitted on `docs`,
    and the training matrix (training time only: serving keeps `IntentClassifier`'s arrays)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vectorizers = [
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=False),
        TfidfVectorizer(analyzer=_identity, sublinear_tf=True),
        TfidfVectorizer(analyzer=_identity, sublinear_tf=True),
    ]
    views = list(zip(*(_blocks(d) for d in docs), strict=True))
    parts = [vec.fit_transform(view) * w for vec, view, w in zip(vectorizers, views, BLOCK_WEIGHTS, strict=True)]
    matrix = sparse.hstack(parts, format="csr")
    return vectorizers, LinearSVC(C=1.0).fit(matrix, list(labels)), matrix


class IntentClassifier:
    """Linear SVM margins over the three TF-IDF blocks, kept as numpy arrays."""

    def __init__(self) -> None:
        self.features: list[TfidfFeatures] = []
        self.offsets: list[int] = []  # first column of each block
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        self.classes: list[str] = []
        self._single: str | None = None

    def _one(self, doc: Analyzed) -> tuple[np.ndarray, np.ndarray]:
        parts = [f.one(view) for f, view in zip(self.features, _blocks(doc), strict=True)]
        idx = np.concatenate([i + off for (i, _), off in zip(parts, self.offsets, strict=True)])
        vals = np.concatenate([v * w for (_, v), w in zip(parts, BLOCK_WEIGHTS, strict=True)])
        return idx, vals

    def fit(self, docs: Sequence[Analyzed], labels: Sequence[str]) -> IntentClassifier:
        self.classes = sorted(set(labels))
        if len(self.classes) == 1:  # an SVM needs two classes; one intent is always that intent
            self._single = self.classes[0]
            return self
        vectorizers, svm, _ = fit_estimators(docs, labels)
        return self.adopt(vectorizers, svm)

    def adopt(self, vectorizers: Sequence[TfidfVectorizer], svm: LinearSVC) -> IntentClassifier:
        """Keep what scoring needs of fitted estimators (`fit_estimators`'s): arrays, no sklearn."""
        self.features = [TfidfFeatures.from_sklearn(v) for v in vectorizers]
        self.offsets = np.cumsum([0, *(len(f) for f in self.features[:-1])]).tolist()
        self.coef = np.array(svm.coef_, dtype=np.float64)
        self.intercept = np.array(svm.intercept_, dtype=np.float64)
        self.classes = [str(c) for c in svm.classes_]
        self._single = None
        return self

    def margins(self, doc: Analyzed) -> np.ndarray:
        """The SVM's decision values for one message (one per class; one value if binary)."""
        idx, vals = self._one(doc)  # gather the touched coefficient columns
        return np.asarray(self.coef[:, idx] @ vals + self.intercept)

    def scores(self, docs: Sequence[Analyzed]) -> np.ndarray:
        """Probabilities (rows sum to 1) over `self.classes`."""
        if self._single is not None or not self.classes:
            return np.ones((len(docs), max(1, len(self.classes))))
        if not docs:
            return np.zeros((0, len(self.classes)))
        margins = np.array([self.margins(d) for d in docs]).reshape(len(docs), -1)
        if margins.shape[1] == 1:  # binary: sklearn returns the margin of classes[1]
            margins = np.concatenate([-margins, margins], axis=1)
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
