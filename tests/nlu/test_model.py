"""The embedded model on the demo brand: routing of intents and FAQ, affect, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.config import load_affect_data, load_training_data
from nlu.model import FORMAT_VERSION, MAGIC, ModelFileError, NluModel, fingerprint
from nlu.types import FaqDoc

from .conftest import faq_id


@pytest.mark.parametrize(
    ("text", "intent"),
    [("你好", "greet"), ("转人工", "human"), ("我要找真人客服", "human"), ("谢谢啦", "thanks"), ("拜拜", "goodbye")],
)
def test_conversational_intents(model: NluModel, text: str, intent: str) -> None:
    result = model.parse(text)
    assert result.intent == intent
    assert result.confidence >= 0.5
    assert result.decision != "answer"  # never an FAQ answer: the engine routes by intent


def test_faq_paraphrase_is_answered(model: NluModel, faqs: list[FaqDoc]) -> None:
    result = model.parse("地址填错了还能改吗")
    assert result.intent == f"faq/{faq_id(faqs, '下单后怎么修改收货地址？')}"
    assert result.decision == "answer"
    assert result.best_faq is not None and result.best_faq.faq_id == faq_id(faqs, "下单后怎么修改收货地址？")
    assert result.ranking and result.ranking[0][0] == "faq"


def test_unrelated_question_is_not_answered(model: NluModel) -> None:
    result = model.parse("火星上有没有外星人")
    assert result.decision != "answer"


def test_complaint_with_anger_and_entities(model: NluModel) -> None:
    result = model.parse("我要投诉！！订单HX202405180001的炸锅用一天就坏了，你们太过分了")
    assert result.intent == "complaint"
    assert result.anger >= 0.5
    assert result.sentiment < 0.5
    assert {e.entity: e.value for e in result.entities}["order_id"] == "HX202405180001"
    assert {e.entity: e.value for e in result.entities}["product"] == "空气炸锅"


def test_calm_praise_is_positive_and_not_angry(model: NluModel) -> None:
    result = model.parse("东西收到了，质量很好，谢谢客服")
    assert result.sentiment > 0.5
    assert result.anger < 0.5


def test_traditional_chinese_and_full_width_are_understood(model: NluModel, faqs: list[FaqDoc]) -> None:
    result = model.parse("退款多久能到賬？")
    assert result.best_faq is not None
    assert result.best_faq.faq_id == faq_id(faqs, "退款多久能到账？")


@pytest.mark.parametrize("text", ["", "   ", "😀😀", "nihao", "？？？？", "啊" * 3000])
def test_odd_messages_parse(model: NluModel, text: str) -> None:
    result = model.parse(text)
    assert 0.0 <= result.confidence <= 1.0
    assert result.decision in ("answer", "clarify", "fallback")


def test_confirmed_pairs_teach_new_wording(faqs: list[FaqDoc]) -> None:
    data, affect = load_training_data(), load_affect_data()
    target = faq_id(faqs, "怎么开发票？")
    question = "报销凭证在哪弄"
    before = NluModel.train(data, faqs, (), affect).parse(question)
    after = NluModel.train(data, faqs, [(question, target)], affect).parse(question)
    assert before.intent != f"faq/{target}"
    assert after.intent == f"faq/{target}" and after.decision == "answer"


def test_save_and_load_round_trip(model: NluModel, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    model.save(path)
    loaded = NluModel.load(path, model.fingerprint)
    assert loaded.parse("转人工").intent == "human"
    assert loaded.parse("地址填错了还能改吗").intent == model.parse("地址填错了还能改吗").intent


def test_load_rejects_other_data_corrupt_and_old_files(model: NluModel, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    model.save(path)
    with pytest.raises(ModelFileError, match="other data"):
        NluModel.load(path, "0" * 64)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        NluModel.load(path)
    path.write_bytes(MAGIC + f'{{"format": {FORMAT_VERSION + 1}, "fingerprint": ""}}\n'.encode())
    with pytest.raises(ModelFileError, match="format"):
        NluModel.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="not a Huike"):
        NluModel.load(path)


def test_fingerprint_changes_with_faq(faqs: list[FaqDoc]) -> None:
    data = load_training_data()
    edited = [*faqs[:-1], FaqDoc(faqs[-1].id, faqs[-1].question, faqs[-1].similar, "新答案")]
    assert fingerprint(data, faqs, ()) != fingerprint(data, edited, ())
    assert fingerprint(data, faqs, ()) == fingerprint(data, list(faqs), ())
