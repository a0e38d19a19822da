"""Rasa YAML: Huike reads it and writes it back (round trip), and the TSV readers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nlu.config import load_training_data
from nlu.data import load_intent_examples, load_pairs, load_rasa_yaml, write_rasa_project
from nlu.types import FaqDoc


def test_shipped_training_data_has_the_core_intents() -> None:
    data = load_training_data()
    assert {"greet", "thanks", "goodbye", "human", "complaint", "order_status", "refund", "affirm", "deny"} <= set(
        data.intents
    )
    assert data.synonyms["炸锅"] == "空气炸锅"
    assert "order_id" in data.regexes and "phone" in data.regexes
    assert "保温杯" in data.lookups["product"]


def test_export_and_read_back_round_trip(tmp_path: Path, faqs: list[FaqDoc]) -> None:
    data = load_training_data()
    write_rasa_project(tmp_path, data, faqs, epochs=5)
    config = yaml.safe_load((tmp_path / "config.yml").read_text(encoding="utf-8"))
    assert config["language"] == "zh"
    assert config["pipeline"][0]["name"] == "JiebaTokenizer"
    assert all(c.get("epochs", 5) == 5 for c in config["pipeline"])

    back = load_rasa_yaml(tmp_path / "data" / "nlu.yml").merge(load_rasa_yaml(tmp_path / "domain.yml"))
    plain, docs = back.split_faq()
    assert sorted(plain.examples) == sorted(set(data.examples)) or sorted(plain.examples) == sorted(data.examples)
    assert plain.synonyms == data.synonyms
    assert plain.regexes == data.regexes
    assert plain.lookups == data.lookups
    by_id = {d.id: d for d in docs}
    for faq in faqs:
        assert by_id[faq.id].question == faq.question
        assert by_id[faq.id].similar == faq.similar
        assert by_id[faq.id].answer == faq.answer


def test_rasa_annotations_are_reduced_to_text(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n'
        '    - 查一下订单[HX202405180001](order_id)\n    - 我的[保温杯]{"entity": "product"}到哪了\n',
        encoding="utf-8",
    )
    assert load_rasa_yaml(path).examples == [
        ("查一下订单HX202405180001", "order_status"),
        ("我的保温杯到哪了", "order_status"),
    ]


def test_tsv_readers_check_headers(tmp_path: Path) -> None:
    good = tmp_path / "i.tsv"
    good.write_text("text\tintent\n你好\tgreet\n转人工\thuman\n", encoding="utf-8")
    assert load_intent_examples(good).examples == [("你好", "greet"), ("转人工", "human")]
    pairs = tmp_path / "p.tsv"
    pairs.write_text('text_a\ttext_b\tlabel\n怎么退款\t退钱咋弄"\t1\n', encoding="utf-8")
    assert load_pairs(pairs) == [("怎么退款", '退钱咋弄"', 1)]  # no quoting: a quote is a character
    bad = tmp_path / "b.tsv"
    bad.write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        load_intent_examples(bad)
