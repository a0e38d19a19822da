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
from typing import TYPE_CHECKING, Any

import numpy as np

from nlu.vectors import TfidfFeatures

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

_EXCLAIM_RE = re.compile(r"[!！]{2,}|[?？]{2,}|[!！][?？]|[?？][!！]")


# Negators and how many following words they flip ("不 太 好吃" -> 不 !太 !好吃): "好吃" after a
# negator is evidence the other way, which a bag of words cannot see (char bigrams only catch
# "不好"). The scope ends at punctuation.
_NEGATORS = frozenset("不 没 没有 别 无 未 不是 不要 不够 不太 不会 不能 并不".split())  # noqa: SIM905
_NEGATION_SCOPE = 2
_CLAUSE_END = frozenset("，。！？,.!?；;~ ")


def mark_negation(words: Sequence[str]) -> list[str]:
    """The word vectorizer's analyzer: words in a negator's scope get a "!" prefix."""
    out: list[str] = []
    left = 0
    for word in words:
        if word in _CLAUSE_END:
            left = 0
            out.append(word)
            continue
        out.append("!" + word if left else word)
        if word in _NEGATORS:
            left = _NEGATION_SCOPE
        elif left:
            left -= 1
    return out


def nb_ratios(x: Any, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Naive Bayes log-count ratios of binarised features (Wang & Manning's NBSVM): how much more
    often each feature occurs in positive than in negative texts."""
    present = (x > 0).astype(np.float64)
    p = alpha + np.asarray(present[y == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(present[y == 0].sum(axis=0)).ravel()
    return np.asarray(np.log((p / p.sum()) / (q / q.sum())))


def fit_estimators(
    norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int], c: float, nb_blend: bool = True
) -> tuple[TfidfVectorizer, TfidfVectorizer, LogisticRegression, Any]:
    """scikit-learn's char 1-2-gram and word vectorizers and logistic regression fitted on the
    texts, and the training matrix (training time only).

    Two logistic regressions are averaged in logit space: one on the TF-IDF features and one on
    the same features scaled by their naive Bayes log-count ratios (NB-LR, strong on sentiment).
    The average is again one linear model over the TF-IDF features (the NB scaling folds into
    its coefficients), so the returned regression holds the blended coefficients. On waimai_10k,
    ChnSentiCorp hotels and online_shopping 80/20 splits it beats either model alone."""
    if len(set(labels)) < 2:
        raise ValueError("a binary text model needs examples of both labels")
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    char = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=False, max_features=200_000
    )
    word = TfidfVectorizer(analyzer=mark_negation, ngram_range=(1, 1), sublinear_tf=True, max_features=100_000)
    matrix = sparse.hstack([char.fit_transform(norms), word.fit_transform(words)], format="csr")
    y = np.array(labels)
    model = LogisticRegression(C=c, max_iter=2000, solver="liblinear").fit(matrix, y)
    if not nb_blend:
        return char, word, model, matrix
    ratios = nb_ratios(matrix, y)
    # the ratio-scaled features are larger: a stronger regularisation (C / 8, chosen on waimai seed 1)
    nb = LogisticRegression(C=c / 8, max_iter=2000, solver="liblinear").fit(matrix @ sparse.diags(ratios), y)
    model.coef_ = (model.coef_ + nb.coef_ * ratios) / 2
    model.intercept_ = (model.intercept_ + nb.intercept_) / 2
    return char, word, model, matrix


class BinaryTextModel:
    """P(label = 1 | text) from char 1-2-grams + negation-marked words, logistic regression.

    Fitted by scikit-learn, kept as numpy arrays (see `nlu.vectors`)."""

    def __init__(self, c: float = 4.0, *, nb_blend: bool = True) -> None:
        self.c = c
        self.nb_blend = nb_blend
        self.char: TfidfFeatures | None = None
        self.word: TfidfFeatures | None = None
        self.coef = np.zeros(0)
        self.intercept = 0.0
        self.fitted = False

    def fit(self, norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int]) -> BinaryTextModel:
        return self.adopt(*fit_estimators(norms, words, labels, self.c, self.nb_blend)[:3])

    def adopt(self, char: TfidfVectorizer, word: TfidfVectorizer, model: LogisticRegression) -> BinaryTextModel:
        """Keep what scoring needs of fitted estimators (`fit_estimators`'s): arrays, no sklearn."""
        self.char, self.word = TfidfFeatures.from_sklearn(char), TfidfFeatures.from_sklearn(word)
        self.coef = np.array(model.coef_[0], dtype=np.float64)
        self.intercept = float(model.intercept_[0])
        self.fitted = True
        return self

    def logit(self, norm: str, words: list[str]) -> float:
        assert self.char is not None and self.word is not None
        (ci, cv), (wi, wv) = self.char.one(norm), self.word.one(mark_negation(words))
        off = len(self.char)
        return float(self.coef[ci] @ cv + self.coef[wi + off] @ wv + self.intercept)

    def prob(self, norms: Sequence[str], words: Sequence[list[str]]) -> np.ndarray:
        if not self.fitted:
            return np.full(len(norms), 0.5)
        z = np.array([self.logit(n, w) for n, w in zip(norms, words, strict=True)], dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-z))


def anger_cues(text: str) -> float:
    """0..1 boost from punctuation runs that signal agitation in chat messages."""
    return 0.15 if _EXCLAIM_RE.search(text) else 0.0


def sentiment_model() -> BinaryTextModel:
    return BinaryTextModel()


def anger_model() -> BinaryTextModel:
    return BinaryTextModel(c=2.0, nb_blend=False)  # the NB blend lowers anger F1 on CLUEmotion


class AffectModel:
    """Sentiment and anger together; both optional (an untrained part answers neutral)."""

    def __init__(self) -> None:
        self.sentiment = sentiment_model()
        self.anger = anger_model()

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
