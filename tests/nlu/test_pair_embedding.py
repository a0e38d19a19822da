"""The paired embedding: words that confirmed pairs use for one another land close."""

from __future__ import annotations

from nlu.faq import PairEmbedding
from nlu.text import normalize

# (a way of asking, another way) with no character in common
SWAPS = [("开通", "激活"), ("还款", "付账"), ("额度", "上限"), ("逾期", "迟交")]
SUBJECTS = ["花呗", "借呗", "余额宝", "信用卡", "网商贷", "白条"]


def _pairs() -> list[tuple[str, str]]:
    return [(normalize(f"{s}怎么{x}"), normalize(f"请问{s}能{y}吗")) for s in SUBJECTS for x, y in SWAPS]


def test_paraphrased_words_get_a_high_cosine() -> None:
    embedding = PairEmbedding.fit(_pairs(), dim=8)
    assert embedding is not None
    vec = {w: embedding.embed([w])[0] for pair in SWAPS for w in pair}
    for x, y in SWAPS:
        others = [vec[x] @ vec[o] for pair in SWAPS if x not in pair for o in pair]
        assert vec[x] @ vec[y] > 0.9 > max(others) + 0.5  # lexically the cosine would be 0 for both
    # a question about a subject no pair had still lands on the paraphrase of its action
    query, right, wrong = embedding.embed(["微粒贷怎么开通", "微粒贷能激活吗", "微粒贷能付账吗"])
    assert query @ right > query @ wrong + 0.3


def test_too_few_pairs_give_no_embedding() -> None:
    assert PairEmbedding.fit([]) is None
    assert PairEmbedding.fit([("花呗", "余额宝")]) is None  # no n-gram in two texts
