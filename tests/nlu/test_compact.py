"""Serving without scikit-learn: the numpy models score exactly as the fitted estimators they
were made from, and loading a saved model and parsing imports neither sklearn nor scipy."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from nlu.config import load_affect_data, load_training_data
from nlu.faq import N_DENSE, FaqIndex, PairModel, pair_features
from nlu.intents import BLOCK_WEIGHTS, Analyzed, IntentClassifier, _blocks, _identity, fit_estimators
from nlu.model import NluModel
from nlu.sentiment import BinaryTextModel
from nlu.sentiment import fit_estimators as fit_binary
from nlu.text import normalize, shared_tokenizer
from nlu.types import FaqDoc
from nlu.vectors import TfidfFeatures, sparse_dot

# messages the models never saw, with odd cases: empty, Latin, digits, repeated characters, emoji
PROBES = [
    "你好呀",
    "我要投诉！！订单HX202405180001的炸锅用一天就坏了",
    "退款多久能到账",
    "发票怎么开",
    "转人工客服",
    "明天北京天气怎么样",
    "iphone 15 pro max 多少钱",
    "",
    "😀😀",
    "啊啊啊啊啊啊啊",
    "快递 到 哪 了",
    "东西收到了，质量很好，谢谢客服",
]


@pytest.fixture(scope="module")
def texts(faqs: list[FaqDoc]) -> list[tuple[str, str]]:
    """(text, intent) of the shipped training data plus every demo FAQ question as `faq`."""
    data = load_training_data()
    return [*data.examples, *((q, "faq") for f in faqs for q in (f.question, *f.similar))]


def analyzed(text: str) -> Analyzed:
    return Analyzed(normalize(text), shared_tokenizer())


def probes(texts: list[tuple[str, str]]) -> list[Analyzed]:
    sample = random.Random(0).sample([t for t, _ in texts], 40)
    return [analyzed(t) for t in PROBES + sample]


def dense(vector: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    out = np.zeros(size)
    out[vector[0]] = vector[1]
    return out


@pytest.mark.parametrize(
    ("kwargs", "tokens"),
    [
        ({"analyzer": "char", "ngram_range": (1, 2), "lowercase": False}, False),
        ({"analyzer": "char", "ngram_range": (1, 3), "lowercase": False, "sublinear_tf": False}, False),
        ({"analyzer": "char", "ngram_range": (1, 2), "lowercase": False, "max_features": 300}, False),
        ({"analyzer": _identity}, True),
    ],
)
def test_tfidf_features_transform_like_sklearn(texts: list[tuple[str, str]], kwargs: dict, tokens: bool) -> None:
    docs = [d.words if tokens else d.norm for d in (analyzed(t) for t, _ in texts)]
    vec = TfidfVectorizer(**{"sublinear_tf": True, **kwargs}).fit(docs)
    features = TfidfFeatures.from_sklearn(vec)
    for doc in [d.words if tokens else d.norm for d in probes(texts)] + docs[:50]:
        expected = vec.transform([doc]).toarray()[0]
        assert np.allclose(dense(features.one(doc), len(features)), expected, rtol=1e-12, atol=1e-15)


def test_unsupported_vectorizer_options_are_refused() -> None:
    with pytest.raises(ValueError):
        TfidfFeatures.from_sklearn(TfidfVectorizer(analyzer="char", lowercase=True).fit(["订单"]))
    with pytest.raises(ValueError):
        TfidfFeatures.from_sklearn(TfidfVectorizer(analyzer="word").fit(["order status"]))


def test_intent_classifier_scores_as_the_linear_svm(texts: list[tuple[str, str]]) -> None:
    docs = [analyzed(t) for t, _ in texts]
    vectorizers, svm, _ = fit_estimators(docs, [i for _, i in texts])
    clf = IntentClassifier().adopt(vectorizers, svm)
    queries = probes(texts)
    views = list(zip(*(_blocks(d) for d in queries), strict=True))
    matrix = sparse.hstack(
        [v.transform(view) * w for v, view, w in zip(vectorizers, views, BLOCK_WEIGHTS, strict=True)], format="csr"
    )
    expected = svm.decision_function(matrix)
    actual = np.array([clf.margins(d) for d in queries])
    assert np.allclose(actual, expected, rtol=1e-10, atol=1e-12)
    assert clf.predict(queries) == [str(c) for c in svm.predict(matrix)]
    assert clf.classes == [str(c) for c in svm.classes_]


def test_binary_text_model_scores_as_the_logistic_regression() -> None:
    affect = load_affect_data()
    rows = [(*analyzed_words(t), y) for t, y in affect.sentiment]
    char, word, lr, _ = fit_binary([n for n, _, _ in rows], [w for _, w, _ in rows], [y for *_, y in rows], 4.0)
    model = BinaryTextModel().adopt(char, word, lr)
    queries = [analyzed_words(t) for t in PROBES]
    matrix = sparse.hstack(
        [char.transform([n for n, _ in queries]), word.transform([w for _, w in queries])], format="csr"
    )
    expected = lr.predict_proba(matrix)[:, 1]
    actual = model.prob([n for n, _ in queries], [w for _, w in queries])
    assert np.allclose(actual, expected, rtol=1e-10, atol=1e-12)


def analyzed_words(text: str) -> tuple[str, list[str]]:
    doc = analyzed(text)
    return doc.norm, doc.words


def test_lexical_index_scores_as_sparse_matrices(faqs: list[FaqDoc]) -> None:
    index = FaqIndex(faqs, analyzed_words)
    lex = index.lexical
    assert lex is not None and lex.char is not None and lex.word is not None
    char = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, lowercase=False)
    rows = char.fit_transform(index.row_norm)
    for text in PROBES:
        norm, words = analyzed_words(text)
        cos_c, _, bm = lex.scores(norm, words)
        assert np.allclose(cos_c, (rows @ char.transform([norm]).T).toarray().ravel(), rtol=1e-10, atol=1e-12)
        assert ((bm >= 0) & (bm <= 1)).all()
        # a pair's cosine is the same number whether taken from the index or from two vectors
        for r in range(0, len(index.row_norm), 7):
            qc, _ = lex.query_vectors(norm, words)
            dc, _ = lex.query_vectors(index.row_norm[r], index.row_words[r])
            assert sparse_dot(qc, dc) == pytest.approx(cos_c[r], rel=1e-10, abs=1e-12)


def test_pair_model_scores_as_the_logistic_regression(faqs: list[FaqDoc]) -> None:
    index = FaqIndex(faqs, analyzed_words)
    rng = random.Random(0)
    rows, labels = [], []
    for faq in faqs:
        qn, qw = analyzed_words(faq.question)
        for text, label in [*((s, 1) for s in faq.similar), (rng.choice(faqs).question, 0), (rng.choice(PROBES), 0)]:
            dn, dw = analyzed_words(text)
            rows.append(pair_features(qn, qw, dn, dw, *index._pair_sims(qn, qw, dn, dw)))
            labels.append(int(label and text != faq.question))
    model = PairModel(N_DENSE, c=0.3)
    lr = model.fit_estimator(rows, labels)
    model.set_coefficients(lr.coef_[0], float(lr.intercept_[0]))
    assert len(model.hashed_coef) < 0.05 * (1 << 19)  # only the features training pairs had
    assert np.allclose(model.margin(rows), lr.decision_function(model._matrix(rows)), rtol=1e-10, atol=1e-12)
    unseen = [pair_features("火星", ["火星"], "土星", ["土星"], 0.0, 0.0, 0.0)]
    assert np.allclose(model.margin(unseen), lr.decision_function(model._matrix(unseen)), rtol=1e-10, atol=1e-12)


SERVE = """
import sys
from pathlib import Path
from nlu.model import NluModel
model = NluModel.load(Path(sys.argv[1]))
result = model.parse("地址填错了还能改吗")
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
print(result.intent, result.decision, ",".join(heavy) or "-")
"""


def test_serving_a_saved_model_imports_neither_sklearn_nor_scipy(model: NluModel, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    model.save(path)
    out = subprocess.run(
        [sys.executable, "-c", SERVE, str(path)], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    expected = model.parse("地址填错了还能改吗")
    assert out == [expected.intent, expected.decision, "-"]


def test_saved_model_parses_as_the_trained_one(model: NluModel, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    model.save(path)
    loaded = NluModel.load(path)
    for text in PROBES:
        assert loaded.parse(text) == model.parse(text)


TRAIN_AND_SERVE = """
import asyncio, sys
from pathlib import Path
from nlu.service import NluService
from nlu.types import FaqDoc
service = NluService(model_path=Path(sys.argv[1]))
asyncio.run(service.start([FaqDoc(id=7, question="怎么开发票？", similar=("发票在哪开",), answer="在订单页申请。")]))
result = asyncio.run(service.parse("发票怎么开"))
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
print(result.intent, ",".join(heavy) or "-")
"""


def test_the_service_trains_in_a_child_process(tmp_path: Path) -> None:
    """No saved model: the service trains, and still scikit-learn never enters its process."""
    path = tmp_path / "m.pkl"
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_SERVE, str(path)], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert out == ["faq/7", "-"]
    assert NluModel.load(path).parse("发票怎么开").intent == "faq/7"  # and saved what it trained
