"""Group the questions the bot could not answer (content gaps) by similarity.

Greedy leader clustering on the characters and character bigrams of the lexicon-folded text: the most frequent
question leads a group, and a question joins the first group whose leader it resembles
(Jaccard >= JOIN). An inverted index from bigram to group keeps it near-linear; a few thousand
messages group in milliseconds, no model needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from nlu.lexicon import shipped_lexicon
from nlu.text import normalize

JOIN = 0.3


@dataclass
class Group:
    leader: str  # the most asked wording
    texts: Counter[str] = field(default_factory=Counter)  # wording -> times asked

    @property
    def count(self) -> int:
        return sum(self.texts.values())


def _grams(folded: str) -> frozenset[str]:
    text = folded.replace(" ", "")
    return frozenset(text) | frozenset(text[i : i + 2] for i in range(len(text) - 1))


def group_questions(texts: Iterable[str], join: float = JOIN) -> list[Group]:
    """Groups of similar questions, the largest first."""
    lexicon = shipped_lexicon()
    asked = Counter(t.strip() for t in texts if t and t.strip())
    groups: list[Group] = []
    leader_grams: list[frozenset[str]] = []
    index: dict[str, list[int]] = {}
    for text, n in sorted(asked.items(), key=lambda kv: (-kv[1], kv[0])):
        grams = _grams(lexicon.apply(normalize(text)))
        shared = Counter(g for gram in grams for g in index.get(gram, ()))
        best, best_score = -1, join
        for g, common in shared.items():
            score = common / len(grams | leader_grams[g])
            if score >= best_score:
                best, best_score = g, score
        if best < 0:
            best = len(groups)
            groups.append(Group(leader=text))
            leader_grams.append(grams)
            for gram in grams:
                index.setdefault(gram, []).append(best)
        groups[best].texts[text] += n
    return sorted(groups, key=lambda g: (-g.count, g.leader))
