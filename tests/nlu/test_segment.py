"""The compact segmenter cuts and tags exactly as jieba.posseg (HMM off) does, brand words included."""

from __future__ import annotations

import logging

import jieba
import jieba.posseg
import pytest

from nlu.segment import Segmenter
from nlu.text import Tokenizer, normalize

MESSAGES = [
    "我的订单HX20241123怎么还没发货？？",
    "花呗可以提前还款吗",
    "借呗额度怎么突然降了",
    "iphone13 pro max 多少钱 3.5折吗",
    "上周五买的蚂蚁会员能退款吗!!",
    "南京市长江大桥什么时候修好",
    "深圳明天天气怎么样，要带伞吗",
    "我要 转人工   客服",
    "给我放一首周杰伦的稻香",
    "这家外卖送得太慢了，饭都凉了😡",
    "abc_def+g#1 & 2.0版本 100%好评",
    "退货运费险怎么理赔？ 12:30前能到吗",
]
BRAND_WORDS = ["蚂蚁会员", "转人工", "运费险"]


@pytest.fixture(scope="module")
def reference() -> jieba.posseg.POSTokenizer:
    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    for word in BRAND_WORDS:
        tok.add_word(word, freq=max(2000, tok.suggest_freq(word)), tag="nz")
    return jieba.posseg.POSTokenizer(tok)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    seg = Segmenter()
    for word in BRAND_WORDS:
        seg.add_word(word)
    return seg


@pytest.mark.parametrize("message", MESSAGES)
def test_cuts_and_tags_like_jieba(message: str, segmenter: Segmenter, reference: jieba.posseg.POSTokenizer) -> None:
    text = normalize(message)
    assert segmenter.tag(text) == [(p.word, p.flag) for p in reference.lcut(text, HMM=False)]


def test_brand_words_stay_whole(segmenter: Segmenter) -> None:
    assert ("蚂蚁会员", "nz") in segmenter.tag("上周五买的蚂蚁会员能退款吗")
    assert ("转人工", "nz") in segmenter.tag("我要转人工")


def test_tokenizer_words_are_the_tagged_words() -> None:
    tok = Tokenizer(["运费险"])
    text = normalize("退货运费险怎么理赔？")
    assert tok.words(text) == [w for w, _ in tok.tagged(text)]
    assert "运费险" in tok.words(text)
