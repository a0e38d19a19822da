"""Evaluation of the embedded engine: intents, FAQ matching, sentiment and anger.

Used by `huike nlu eval-*` and `bench/nlu.py`; every function trains on what it is given
and nothing else (no shipped data leaks into an evaluation unless asked).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn.feature_extraction.text  # training libraries: loaded here, before any clock starts
import sklearn.linear_model
import sklearn.svm  # noqa: F401
from sklearn.metrics import accuracy_score, classification_report, f1_score

from nlu.data import TrainingData
from nlu.faq import FaqIndex
from nlu.intents import IntentClassifier
from nlu.sentiment import BinaryTextModel, sentiment_model
from nlu.text import normalize, shared_tokenizer
from nlu.types import FaqDoc

from nlu.intents import Analyzed  # isort: skip


@dataclass
class IntentReport:
    accuracy: float
    macro_f1: float
    n: int
    train_seconds: float
    predict_ms_p50: float
    predict_ms_p99: float
    per_intent: str = ""
    confusions: list[tuple[str, str, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "n": self.n,
            "train_seconds": round(self.train_seconds, 3),
            "predict_ms_p50": round(self.predict_ms_p50, 3),
            "predict_ms_p99": round(self.predict_ms_p99, 3),
        }


def eval_intents(train: TrainingData, test: TrainingData) -> IntentReport:
    tok = shared_tokenizer()
    tok.words("预热")  # load jieba before the clock starts: it is shared process state, not training
    started = time.perf_counter()
    clf = IntentClassifier().fit(
        [Analyzed(normalize(t), tok) for t, _ in train.examples], [i for _, i in train.examples]
    )
    train_seconds = time.perf_counter() - started
    gold = [i for _, i in test.examples]
    predicted, latencies = [], []
    for text, _ in test.examples:
        t0 = time.perf_counter()
        predicted.append(clf.predict([Analyzed(normalize(text), tok)])[0])
        latencies.append((time.perf_counter() - t0) * 1000)
    confusions = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    return IntentReport(
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(f1_score(gold, predicted, average="macro", zero_division=0)),
        n=len(gold),
        train_seconds=train_seconds,
        predict_ms_p50=float(np.percentile(latencies, 50)) if latencies else 0.0,
        predict_ms_p99=float(np.percentile(latencies, 99)) if latencies else 0.0,
        per_intent=str(classification_report(gold, predicted, zero_division=0)),
        confusions=[(g, p, n) for (g, p), n in confusions.most_common(10)],
    )


@dataclass
class FaqReport:
    hit_at_1: float
    hit_at_3: float
    mrr: float
    match_accuracy: float
    n: int
    n_faq: int
    n_pairs: int
    train_pairs: int
    seconds: float
    duplicate_queries: int = 0
    hit_at_1_same_meaning: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "hit_at_1": round(self.hit_at_1, 4),
            "hit_at_3": round(self.hit_at_3, 4),
            "mrr": round(self.mrr, 4),
            "match_accuracy": round(self.match_accuracy, 4),
            "n": self.n,
            "n_faq": self.n_faq,
            "n_pairs": self.n_pairs,
            "train_pairs": self.train_pairs,
            "seconds": round(self.seconds, 2),
            # a query whose own text is another indexed question can never be a hit@1
            "duplicate_queries": self.duplicate_queries,
            "hit_at_1_ceiling": round(1 - self.duplicate_queries / max(self.n, 1), 4),
            "hit_at_1_same_meaning": round(self.hit_at_1_same_meaning, 4),
        }


def _analyzer() -> Any:
    tok = shared_tokenizer()
    cache: dict[str, tuple[str, list[str]]] = {}

    def analyze(text: str) -> tuple[str, list[str]]:
        hit = cache.get(text)
        if hit is None:
            norm = normalize(text)
            hit = cache[text] = (norm, tok.words(norm))
        return hit

    return analyze


def index_from_questions(questions: Sequence[str], analyze: Any) -> tuple[FaqIndex, dict[str, int]]:
    ids = {q: n for n, q in enumerate(dict.fromkeys(questions))}
    return FaqIndex([FaqDoc(id=n, question=q) for q, n in ids.items()], analyze), ids


def eval_faq(pairs: Sequence[tuple[str, str, int]], train_pairs: Sequence[tuple[str, str, int]] = ()) -> FaqReport:
    """Index every distinct text_a; query each label-1 text_b; decision accuracy over all pairs."""
    started = time.perf_counter()
    analyze = _analyzer()
    index, ids = index_from_questions([a for a, _, _ in pairs], analyze)
    if train_pairs:
        # learn on an index of the training questions (negatives are mined there), then reuse the matcher
        train_index, _ = index_from_questions([a for a, _, _ in train_pairs], analyze)
        train_index.train_matcher(train_pairs, analyze)
        index.matcher = train_index.matcher
    hits1 = hits3 = same_meaning = duplicates = 0
    rr = 0.0
    n = 0
    same = _same_meaning(pairs, analyze)
    questions: defaultdict[str, set[int]] = defaultdict(set)
    for q, fid in ids.items():
        questions[analyze(q)[0]].add(fid)
    for a, b, label in pairs:
        if label != 1:
            continue
        n += 1
        norm, words = analyze(b)
        ranked = [h.faq_id for h in index.search(norm, words, k=10)]
        target = ids[a]
        if ranked[:1] == [target]:
            hits1 += 1
        if target in ranked[:3]:
            hits3 += 1
        if target in ranked:
            rr += 1.0 / (ranked.index(target) + 1)
        duplicates += bool(questions.get(norm, set()) - {target})
        if ranked:
            top = analyze(index.faqs[ranked[0]].question)[0]
            same_meaning += top in same[norm] | same[analyze(a)[0]]
    threshold = index.thresholds.answer
    correct = 0
    for a, b, label in pairs:
        qn, qw = analyze(b)
        dn, dw = analyze(a)
        predicted = index.pair_score(qn, qw, dn, dw) >= threshold
        correct += int(predicted == bool(label))
    return FaqReport(
        hit_at_1=hits1 / max(n, 1),
        hit_at_3=hits3 / max(n, 1),
        mrr=rr / max(n, 1),
        match_accuracy=correct / max(len(pairs), 1),
        n=n,
        n_faq=len(ids),
        n_pairs=len(pairs),
        train_pairs=len(train_pairs),
        seconds=time.perf_counter() - started,
        duplicate_queries=duplicates,
        hit_at_1_same_meaning=same_meaning / max(n, 1),
    )


def _same_meaning(pairs: Sequence[tuple[str, str, int]], analyze: Any) -> defaultdict[str, set[str]]:
    """Normalised text -> the texts the pairs label as meaning the same (itself included).

    Question-matching sets chain their pairs (a~b, b~c), so an index of every text_a holds
    several ways of asking one question; a top hit among them is right in meaning but not
    the pair's own text_a. Direct labels only: chains through label noise are not followed."""
    same: defaultdict[str, set[str]] = defaultdict(set)
    for a, b, label in pairs:
        na, nb = analyze(a)[0], analyze(b)[0]
        same[na].add(na)
        same[nb].add(nb)
        if label == 1:
            same[na].add(nb)
            same[nb].add(na)
    return same


def split_pairs_by_text_a(
    pairs: Sequence[tuple[str, str, int]], test_fraction: float = 0.1, seed: int = 0
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """Split so that no text_a is in both parts (the FAQ questions of the test part are unseen)."""
    questions = sorted({a for a, _, _ in pairs})
    random.Random(seed).shuffle(questions)
    test_q = set(questions[: round(len(questions) * test_fraction)])
    train = [p for p in pairs if p[0] not in test_q]
    test = [p for p in pairs if p[0] in test_q]
    return train, test


def split_rows(rows: Sequence[Any], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[Any], list[Any]]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = len(rows) - round(len(rows) * test_fraction)
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


@dataclass
class BinaryReport:
    accuracy: float
    f1: float
    precision: float
    recall: float
    n: int
    train_n: int

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "f1": round(self.f1, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "n": self.n,
            "train_n": self.train_n,
        }


def eval_binary(
    train: Sequence[tuple[str, int]],
    test: Sequence[tuple[str, int]],
    *,
    model: BinaryTextModel | None = None,
    threshold: float = 0.5,
) -> BinaryReport:
    """Train `model` (the sentiment model unless given) on `train`, report on `test`."""
    analyze = _analyzer()
    tr = [analyze(t) for t, _ in train]
    model = (model or sentiment_model()).fit([n for n, _ in tr], [w for _, w in tr], [y for _, y in train])
    te = [analyze(t) for t, _ in test]
    probs = model.prob([n for n, _ in te], [w for _, w in te])
    return binary_report([y for _, y in test], probs >= threshold, train_n=len(train))


def binary_report(gold: Sequence[int], predicted: Any, *, train_n: int) -> BinaryReport:
    y = np.array(gold, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    tp = int((y & p).sum())
    precision = tp / max(int(p.sum()), 1)
    recall = tp / max(int(y.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return BinaryReport(
        accuracy=float((y == p).mean()) if len(y) else 0.0,
        f1=f1,
        precision=precision,
        recall=recall,
        n=len(y),
        train_n=train_n,
    )
