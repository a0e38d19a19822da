"""Sentiment (positive probability) and anger/urgency (0..1) for complaint triage.

Both are linear models over char 1-2-grams and jieba words, trained on data: the default
model on the small seed set that ships in `config/nlu/sentiment.yml` (written for Huike, not
copied from any corpus), and a brand can retrain on its own labelled reviews/messages
(`huike nlu eval-sentiment` shows what such data buys). Anger adds a few cues a linear model
on a small seed set cannot learn reliably (exclamation runs, repeated question marks).
"""

from __future__ import annotations

import re
from collections import Counter
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
    norms: Sequence[str],
    words: Sequence[list[str]],
    labels: Sequence[int],
    c: float,
    nb_blend: bool = True,
    calibrate: bool = True,
) -> tuple[TfidfVectorizer, TfidfVectorizer, LogisticRegression, Any]:
    """scikit-learn's char 1-2-gram and word vectorizers and logistic regression fitted on the
    texts, and the training matrix (training time only).

    Two logistic regressions are averaged in logit space: one on the TF-IDF features and one on
    the same features scaled by their naive Bayes log-count ratios (NB-LR, strong on sentiment).
    The average is again one linear model over the TF-IDF features (the NB scaling folds into
    its coefficients), so the returned regression holds the blended coefficients. On waimai_10k,
    ChnSentiCorp hotels and online_shopping 80/20 splits it beats either model alone.

    With `calibrate` (and enough texts of each label) the logits are Platt-scaled: the averaged,
    regularised logits are under-confident and lean to the majority label, so a*z + b fitted on
    out-of-fold logits of the training texts (never test data) rescales and recentres them;
    a and b fold into the coefficients and intercept (waimai 80/20 seed 0: 0.9082 -> 0.9149)."""
    if len(set(labels)) < 2:
        raise ValueError("a binary text model needs examples of both labels")
    char, word, model, matrix = _fit_blend(norms, words, labels, c, nb_blend)
    if calibrate and min(Counter(labels).values()) >= CALIBRATION_MIN_PER_LABEL:
        a, b = platt_scaling(*out_of_fold_logits(norms, words, labels, c, nb_blend))
        model.coef_ = model.coef_ * a
        model.intercept_ = model.intercept_ * a + b
    return char, word, model, matrix


CALIBRATION_FOLDS = 3
CALIBRATION_MIN_PER_LABEL = 20  # fewer: out-of-fold logits are too few to fit a and b on


def _fit_blend(
    norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int], c: float, nb_blend: bool
) -> tuple[TfidfVectorizer, TfidfVectorizer, LogisticRegression, Any]:
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


def out_of_fold_logits(
    norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int], c: float, nb_blend: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each training text's logit from a model fitted on the other folds (stratified, fixed seed)."""
    from scipy import sparse
    from sklearn.model_selection import StratifiedKFold

    y = np.array(labels)
    logits = np.zeros(len(y))
    folds = StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=0)
    for fit_rows, held in folds.split(np.zeros(len(y)), y):
        char, word, model, _ = _fit_blend(
            [norms[i] for i in fit_rows], [words[i] for i in fit_rows], y[fit_rows], c, nb_blend
        )
        x = sparse.hstack(
            [char.transform([norms[i] for i in held]), word.transform([words[i] for i in held])], format="csr"
        )
        logits[held] = model.decision_function(x)
    return logits, y


def platt_scaling(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) maximising the likelihood of P(label = 1) = sigmoid(a * logit + b) (Platt, 1999).

    Platt's targets (n+ + 1) / (n+ + 2) and 1 / (n- + 2) instead of 1 and 0 keep a finite when
    the logits separate the labels (a small, clean training set)."""
    from sklearn.linear_model import LogisticRegression

    n_pos = int((labels == 1).sum())
    target = np.where(labels == 1, (n_pos + 1) / (n_pos + 2), 1 / (len(labels) - n_pos + 2))
    # a soft target t is a weight-t positive copy plus a weight-(1 - t) negative copy
    x = np.concatenate([logits, logits])[:, None]
    y = np.concatenate([np.ones(len(logits)), np.zeros(len(logits))])
    fit = LogisticRegression(C=1e6).fit(x, y, sample_weight=np.concatenate([target, 1 - target]))
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


class BinaryTextModel:
    """P(label = 1 | text) from char 1-2-grams + negation-marked words, logistic regression.

    Fitted by scikit-learn, kept as numpy arrays (see `nlu.vectors`)."""

    def __init__(self, c: float = 4.0, *, nb_blend: bool = True, calibrate: bool = True) -> None:
        self.c = c
        self.nb_blend = nb_blend
        self.calibrate = calibrate
        self.char: TfidfFeatures | None = None
        self.word: TfidfFeatures | None = None
        self.coef = np.zeros(0)
        self.intercept = 0.0
        self.fitted = False

    def fit(self, norms: Sequence[str], words: Sequence[list[str]], labels: Sequence[int]) -> BinaryTextModel:
        return self.adopt(*fit_estimators(norms, words, labels, self.c, self.nb_blend, self.calibrate)[:3])

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
    # the NB blend and the calibration lower anger F1 on CLUEmotion (0.2336 -> 0.2316 calibrated)
    return BinaryTextModel(c=2.0, nb_blend=False, calibrate=False)


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
