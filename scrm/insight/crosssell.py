"""Cross-sell: association rules over order lines (Apriori from `efficient-apriori`) and the
recommendations they give for one customer's purchases, with a basket-completion evaluation.

The rule set is small (a few hundred rules of one or two antecedent items); recommending is a
lookup of the rules whose antecedent the customer owns, best confidence x lift first, minus
what they already have. Mining runs in the nightly job only (the library is imported lazily).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Rule:
    antecedent: tuple[str, ...]
    consequent: str
    support: float
    confidence: float
    lift: float

    def as_dict(self) -> dict[str, object]:
        return {"antecedent": list(self.antecedent), "consequent": self.consequent, "support": round(self.support, 5),
                "confidence": round(self.confidence, 4), "lift": round(self.lift, 3)}  # fmt: skip


def mine_rules(baskets: Sequence[Iterable[str]], *, min_support: float = 0.002, min_confidence: float = 0.05,
               max_length: int = 3) -> list[Rule]:  # fmt: skip
    """Rules X -> y (one consequent item), lift > 1, from baskets of distinct items."""
    from efficient_apriori import apriori

    transactions = [tuple(sorted(set(b))) for b in baskets if b]
    if not transactions:
        return []
    _, found = apriori(transactions, min_support=min_support, min_confidence=min_confidence, max_length=max_length)
    rules = [Rule(tuple(r.lhs), r.rhs[0], r.support, r.confidence, r.lift)
             for r in found if len(r.rhs) == 1 and r.lift > 1]  # fmt: skip
    rules.sort(key=lambda r: (-r.confidence, -r.support, r.antecedent, r.consequent))
    return rules


def recommend(rules: Sequence[Rule], owned: Iterable[str], k: int = 5,
              popularity: dict[str, float] | None = None, prior_weight: float = 20.0) -> list[str]:  # fmt: skip
    """The items most likely to join what the customer owns: P(y | X) from the rules whose antecedent
    they own, shrunk towards P(y) (an m-estimate, so a rule seen in a dozen baskets does not outrank
    a staple), and P(y) alone for items without a rule. Owned items are never recommended."""
    have = set(owned)
    base = popularity or {}
    best: dict[str, float] = {}
    for rule in rules:
        if rule.consequent in have or not set(rule.antecedent) <= have:
            continue
        prior = base.get(rule.consequent, 0.0)
        # support = n(X,y)/N and confidence = n(X,y)/n(X); in units of N the m-estimate needs no N
        n_xy, n_x = rule.support, rule.support / rule.confidence
        smoothed = (n_xy * 1e4 + prior_weight * prior) / (n_x * 1e4 + prior_weight)
        best[rule.consequent] = max(best.get(rule.consequent, prior), smoothed)
    for item, p in base.items():
        if item not in have and item not in best:
            best[item] = p
    return sorted(best, key=lambda item: (-best[item], item))[:k]


def popularity(baskets: Sequence[Iterable[str]]) -> dict[str, float]:
    counts = Counter(item for b in baskets for item in set(b))
    return {item: n / max(len(baskets), 1) for item, n in counts.items()}


def read_baskets(path: Path) -> list[list[str]]:
    """One basket per line, comma-separated items (the Groceries format)."""
    with path.open(encoding="utf-8-sig") as f:
        return [[item.strip() for item in line.strip().split(",") if item.strip()] for line in f if line.strip()]


def evaluate(baskets: list[list[str]], *, test_fraction: float = 0.2, seed: int = 0, k: int = 5) -> dict[str, object]:
    """Leave-one-item-out basket completion on a held-out share of the baskets: hit@k of the rules
    (popular items filling the remaining slots) against the most popular items alone."""
    order = list(range(len(baskets)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * (1 - test_fraction))
    train = [baskets[i] for i in order[:cut]]
    test = [sorted(set(baskets[i])) for i in order[cut:]]
    rules = mine_rules(train)
    prior = popularity(train)
    popular = sorted(prior, key=lambda item: (-prior[item], item))
    rng = random.Random(seed + 1)
    hits = base_hits = cases = 0
    for basket in test:
        if len(basket) < 2:
            continue  # nothing left to recommend from
        hidden = rng.choice(basket)
        rest = [item for item in basket if item != hidden]
        cases += 1
        hits += hidden in recommend(rules, rest, k, prior)
        base_hits += hidden in [item for item in popular if item not in rest][:k]
    return {
        "baskets": len(baskets),
        "train_baskets": len(train),
        "test_cases": cases,
        "rules": len(rules),
        "hit_at_5" if k == 5 else f"hit_at_{k}": round(hits / max(cases, 1), 4),
        "baseline_hit_at_5" if k == 5 else f"baseline_hit_at_{k}": round(base_hits / max(cases, 1), 4),
    }
