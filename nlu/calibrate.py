"""Fit the FAQ decision thresholds on the brand's own questions, held out in folds.

Positives: each way of asking an FAQ (question, similar questions, confirmed pairs) is held out
in turn and searched against an index of the rest, its FAQ still present. Negatives ("the FAQ
does not cover it"): whole FAQs are held out and their questions searched against the others.
From the scores (best, runner-up, third) and where the right FAQ ranks, a grid search picks

- answer / margin: the most right direct answers with few wrong ones (WRONG_RATE of the
  answerable held-out questions) and few confident answers to uncovered ones (NONE_RATE);
- clarify / gap: among the rest, the most questions whose right FAQ is offered, with a cost for
  clarifying on uncovered or wrongly offered questions (a short list is cheap, not free).

Training-time only (numpy arrays, a few hundred samples, well under a second for a demo FAQ).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from nlu.types import FaqDoc

if TYPE_CHECKING:
    from nlu.faq import FaqIndex, Thresholds

FOLDS = 5
# Caps on the held-out folds. Uncovered questions there are the siblings of FAQs that stay
# (held-out "退款进度" while "退款到账" is present): the hardest kind, so their cap is looser than
# the target for real uncovered questions (0.10). Both caps were chosen on the dev part of
# tests/data/answers_*.tsv; the held-out part was not used.
WRONG_RATE = 0.08
NONE_RATE = 0.15
CLARIFY_UNCOVERED_COST = 0.25  # offering related entries for a question the FAQ lacks: a small harm
OPTION_COST = 0.03  # each option past the first is one more line to read
MIN_SAMPLES = 20
VERY_SURE = 0.9


def fit_thresholds(
    faqs: Sequence[FaqDoc], analyze: Callable[[str], tuple[str, list[str]]], *, seed: int = 0
) -> Thresholds | None:
    """Thresholds fitted on held-out folds, or None when the FAQ is too small to tell."""
    from nlu.faq import Thresholds

    scores, rank = _held_out(faqs, analyze, seed)
    if (rank >= -1).sum() < MIN_SAMPLES or (rank == -2).sum() < MIN_SAMPLES // 2:
        return None
    answer, margin = _fit_answer(scores, rank)
    clarify, gap = _fit_clarify(scores, rank, answer, margin)
    return Thresholds(answer=answer, clarify=clarify, margin=margin, gap=gap)


def _held_out(
    faqs: Sequence[FaqDoc], analyze: Callable[[str], tuple[str, list[str]]], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n x 3 best scores, rank of the right FAQ: 0..2, -1 not in the top 3, -2 uncovered)."""
    from nlu.faq import FaqIndex

    rng = random.Random(seed)
    ways = {f.id: [t for t in dict.fromkeys((f.question, *f.similar)) if t.strip()] for f in faqs}
    fold_of: dict[tuple[int, int], int] = {}
    for fid, texts in ways.items():
        start = rng.randrange(FOLDS)
        for i in range(len(texts)):
            fold_of[(fid, i)] = (start + i) % FOLDS
    ids = sorted(ways)
    rng.shuffle(ids)
    uncovered_fold = {fid: n % FOLDS for n, fid in enumerate(ids)}
    rows: list[list[float]] = []
    ranks: list[int] = []
    for fold in range(FOLDS):
        kept: list[FaqDoc] = []
        queries: list[tuple[str, int]] = []
        for fid, texts in ways.items():
            keep = [t for i, t in enumerate(texts) if fold_of[(fid, i)] != fold or len(texts) == 1]
            queries += [(t, fid) for i, t in enumerate(texts) if fold_of[(fid, i)] == fold and len(texts) > 1]
            kept.append(FaqDoc(fid, keep[0], tuple(keep[1:])))
        _search(FaqIndex(kept, analyze), queries, analyze, rows, ranks)
        present = [f for f in kept if uncovered_fold[f.id] != fold]
        absent = [(t, -2) for fid, texts in ways.items() if uncovered_fold[fid] == fold for t in texts]
        _search(FaqIndex(present, analyze), absent, analyze, rows, ranks)
    return np.array(rows).reshape(-1, 3), np.array(ranks)


def _search(
    index: FaqIndex,
    queries: list[tuple[str, int]],
    analyze: Callable[[str], tuple[str, list[str]]],
    rows: list[list[float]],
    ranks: list[int],
) -> None:
    for text, fid in queries:
        hits = index.search(*analyze(text), k=3)
        scores = [h.score for h in hits] + [0.0] * (3 - len(hits))
        rows.append(scores[:3])
        found = [i for i, h in enumerate(hits) if h.faq_id == fid]
        ranks.append(-2 if fid == -2 else (found[0] if found else -1))


def _fit_answer(scores: np.ndarray, rank: np.ndarray) -> tuple[float, float]:
    covered, uncovered = rank != -2, rank == -2
    best, lead = scores[:, 0], scores[:, 0] - scores[:, 1]
    choice, top = (0.99, 0.0), -1.0
    for answer in np.arange(0.30, 0.95, 0.01):
        for margin in np.arange(0.0, 0.41, 0.01):
            answered = (best >= answer) & ((lead >= margin) | (best >= VERY_SURE))
            right = (answered & (rank == 0)).sum() / covered.sum()
            wrong = (answered & covered & (rank != 0)).sum() / covered.sum()
            none = (answered & uncovered).sum() / uncovered.sum()
            if wrong <= WRONG_RATE and none <= NONE_RATE and right > top + 1e-9:
                choice, top = (round(float(answer), 2), round(float(margin), 2)), right
    return choice


def _fit_clarify(scores: np.ndarray, rank: np.ndarray, answer: float, margin: float) -> tuple[float, float]:
    covered, uncovered = rank != -2, rank == -2
    best, lead = scores[:, 0], scores[:, 0] - scores[:, 1]
    answered = (best >= answer) & ((lead >= margin) | (best >= VERY_SURE))
    right_score = np.where(rank >= 0, scores[np.arange(len(rank)), np.clip(rank, 0, 2)], -1.0)
    choice, top = (answer, 1.0), -np.inf
    for clarify in np.arange(0.10, answer + 1e-9, 0.01):
        asked = ~answered & (best >= clarify)
        for gap in (0.05, 0.1, 0.15, 0.2, 0.3, 1.0):
            offered = asked & (rank >= 0) & (right_score >= best - gap)
            extra = ((scores[:, 1:] >= (best - gap)[:, None]).sum(axis=1) * asked).mean()
            value = (
                offered[covered].mean()
                - 0.25 * (asked & covered & ~offered).sum() / covered.sum()
                - CLARIFY_UNCOVERED_COST * asked[uncovered].mean()
                - OPTION_COST * extra
            )
            if value > top + 1e-9:
                choice, top = (round(float(clarify), 2), gap), float(value)
    return choice
