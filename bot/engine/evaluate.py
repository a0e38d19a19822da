"""`huike nlu eval-answers`: what customers would get for labelled questions.

Each question goes through the NLU and `reply_kind` (the router's choice for a fresh message);
the label is the FAQ question that answers it, or "none" when the FAQ does not cover it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.engine.decision import reply_kind
from nlu import ParseResult
from nlu.text import normalize
from scrm.ticket_config import DetectionConfig

NONE_LABEL = "none"


@dataclass
class AnswersReport:
    answerable: Counter[str] = field(default_factory=Counter)
    unanswerable: Counter[str] = field(default_factory=Counter)
    ranked: Counter[str] = field(default_factory=Counter)  # the NLU's ranking, whatever the decision
    misses: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n, m = sum(self.answerable.values()), sum(self.unanswerable.values())
        a, u = self.answerable, self.unanswerable
        rate = lambda x, d: round(x / d, 4) if d else 0.0  # noqa: E731
        return {
            "answerable": n,
            "direct_right": rate(a["direct_right"], n),
            "direct_wrong": rate(a["direct_wrong"], n),
            "clarify_right": rate(a["clarify_right"], n),
            "clarify_wrong": rate(a["clarify_wrong"], n),
            "fallback": rate(a["fallback"], n),
            "other": rate(a["other"], n),  # handed over, complaint flow or small talk
            "right_offered": rate(a["direct_right"] + a["clarify_right"], n),
            "hit_at_1": rate(self.ranked["hit_at_1"], n),
            "hit_at_3": rate(self.ranked["hit_at_3"], n),
            "unanswerable": m,
            "none_answered": rate(u["answered"], m),
            "none_clarified": rate(u["clarified"], m),
            "none_fallback": rate(u["fallback"] + u["other"], m),
        }


def evaluate_answers(
    rows: Sequence[tuple[str, str]], parse: Callable[[str], ParseResult], detection: DetectionConfig
) -> AnswersReport:
    """rows: (customer text, FAQ question that answers it or "none")."""
    report = AnswersReport()
    for text, label in rows:
        parsed = parse(text)
        kind = reply_kind(text, parsed, detection)
        offered = [normalize(h.question) for h in parsed.faq]
        if label == NONE_LABEL:
            outcome = {"answer": "answered", "clarify": "clarified", "fallback": "fallback"}.get(kind, "other")
            report.unanswerable[outcome] += 1
            ok = outcome != "answered"
        else:
            right = normalize(label)
            report.ranked["hit_at_1"] += bool(offered) and offered[0] == right
            report.ranked["hit_at_3"] += right in offered[:3]
            if kind == "answer":
                outcome = "direct_right" if offered[0] == right else "direct_wrong"
            elif kind == "clarify":
                outcome = "clarify_right" if right in offered else "clarify_wrong"
            else:
                outcome = "fallback" if kind == "fallback" else "other"
            report.answerable[outcome] += 1
            ok = outcome == "direct_right"
        if not ok:
            offered_questions = [h.question for h in parsed.faq]
            report.misses.append({"text": text, "label": label, "kind": kind, "offered": offered_questions})
    return report
