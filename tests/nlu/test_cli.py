"""`huike nlu …` commands: evaluation output contract, training, Rasa export, pair import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from nlu.model import NluModel
from scrm.db import SessionFactory

runner = CliRunner()

INTENTS_TRAIN = """text\tintent
你好\tgreet
您好啊\tgreet
在吗\tgreet
早上好\tgreet
转人工\thuman
我要人工客服\thuman
找真人\thuman
人工服务\thuman
我要投诉\tcomplaint
服务太差了我要投诉\tcomplaint
东西坏了要投诉\tcomplaint
投诉快递员\tcomplaint
"""
INTENTS_TEST = """text\tintent
你好呀\tgreet
帮我转人工\thuman
我要投诉你们\tcomplaint
"""
PAIRS = """text_a\ttext_b\tlabel
怎么开发票\t发票怎么开具\t1
退款多久到账\t退的钱什么时候到\t1
怎么修改收货地址\t地址填错了能改吗\t1
会员积分怎么用\t积分可以抵现吗\t1
怎么开发票\t退款多久到账\t0
会员积分怎么用\t怎么修改收货地址\t0
"""


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _last_json(output: str) -> dict[str, object]:
    return json.loads(output.strip().splitlines()[-1])


def test_eval_intents_json_contract(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "nlu",
            "eval-intents",
            "--train",
            str(_write(tmp_path, "tr.tsv", INTENTS_TRAIN)),
            "--test",
            str(_write(tmp_path, "te.tsv", INTENTS_TEST)),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = _last_json(result.output)
    assert set(figures) == {"accuracy", "macro_f1", "n", "train_seconds", "predict_ms_p50", "predict_ms_p99"}
    assert figures["n"] == 3
    assert figures["accuracy"] == 1.0


def test_eval_intents_reads_rasa_yaml_and_prints_report(tmp_path: Path) -> None:
    nlu = {
        "version": "3.1",
        "nlu": [
            {"intent": "greet", "examples": "- 你好\n- 您好\n- 在吗\n"},
            {"intent": "human", "examples": "- 转人工\n- 人工客服\n- 找真人\n"},
        ],
    }
    train = _write(tmp_path, "nlu.yml", yaml.safe_dump(nlu, allow_unicode=True))
    result = runner.invoke(app, ["nlu", "eval-intents", "--train", str(train), "--test", str(train)])
    assert result.exit_code == 0, result.output
    assert "macro_f1" in result.output and "greet" in result.output


def test_eval_faq_json_contract(tmp_path: Path) -> None:
    pairs = _write(tmp_path, "pairs.tsv", PAIRS)
    result = runner.invoke(app, ["nlu", "eval-faq", "--pairs", str(pairs), "--json"])
    assert result.exit_code == 0, result.output
    figures = _last_json(result.output)
    assert {"hit_at_1", "hit_at_3", "mrr", "match_accuracy", "n"} <= set(figures)
    assert figures["n"] == 4
    assert figures["hit_at_3"] == 1.0  # four FAQ: every right one is in the top 3
    assert 0.0 <= float(figures["match_accuracy"]) <= 1.0  # type: ignore[arg-type]


def test_eval_faq_counts_queries_that_are_another_faq(tmp_path: Path) -> None:
    # question-matching sets chain their pairs: 如何退货 is a query of 怎么退货 and an FAQ of its own
    chained = PAIRS + "怎么退货\t如何退货\t1\n如何退货\t退货的流程是什么\t1\n"
    result = runner.invoke(app, ["nlu", "eval-faq", "--pairs", str(_write(tmp_path, "p.tsv", chained)), "--json"])
    assert result.exit_code == 0, result.output
    figures = _last_json(result.output)
    assert figures["n"] == 6 and figures["duplicate_queries"] == 1
    assert figures["hit_at_1_ceiling"] == round(5 / 6, 4)
    # the query's own text wins (it is indexed), which is right in meaning but not the pair's text_a
    assert figures["hit_at_1"] <= 5 / 6 < figures["hit_at_1_same_meaning"] == 1.0


def test_eval_faq_with_train_pairs(tmp_path: Path) -> None:
    pairs = _write(tmp_path, "pairs.tsv", PAIRS)
    result = runner.invoke(app, ["nlu", "eval-faq", "--pairs", str(pairs), "--train-pairs", str(pairs), "--json"])
    assert result.exit_code == 0, result.output
    assert _last_json(result.output)["n"] == 4


def test_eval_sentiment_split_and_anger(tmp_path: Path) -> None:
    rows = "text\tlabel\n" + "".join(f"很好吃很满意{i}\t1\n太难吃了很失望{i}\t0\n" for i in range(20))
    data = _write(tmp_path, "s.tsv", rows)
    result = runner.invoke(app, ["nlu", "eval-sentiment", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    figures = _last_json(result.output)
    assert figures["n"] == 8 and figures["accuracy"] == 1.0
    emotions = _write(tmp_path, "e.tsv", "text\tlabel\n气死我了，你们太过分了！！\tanger\n今天天气真好\thappiness\n")
    result = runner.invoke(app, ["nlu", "eval-anger", "--test", str(emotions), "--json"])
    assert result.exit_code == 0, result.output
    assert _last_json(result.output)["source"] == "shipped seed set"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("HUIKE_DATABASE_URL", database_url)
    monkeypatch.setenv("HUIKE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUIKE_NLU_MODEL_PATH", raising=False)
    return tmp_path


async def test_train_export_and_import_pairs_use_the_database(
    cli_env: Path, db: SessionFactory, seeded_faq: int
) -> None:
    from models import FaqConfirmation, FaqEntry

    async with db() as session:
        invoice = (await session.execute(select(FaqEntry).where(FaqEntry.question == "怎么开发票？"))).scalar_one()
    pairs = _write(
        cli_env,
        "confirmed.tsv",
        "text_a\ttext_b\tlabel\n怎么开发票？\t报销凭证在哪弄\t1\n怎么开发票？\t退钱\t0\n没有这个问题\t随便\t1\n",
    )
    result = await _invoke(["nlu", "import-pairs", str(pairs)])
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.output and "1 with unknown FAQ" in result.output
    async with db() as session:
        rows = (await session.execute(select(FaqConfirmation))).scalars().all()
    assert [(r.text, r.faq_id) for r in rows] == [("报销凭证在哪弄", invoice.id)]
    again = await _invoke(["nlu", "import-pairs", str(pairs)])
    assert "imported 0" in again.output  # idempotent

    result = await _invoke(["nlu", "train"])
    assert result.exit_code == 0, result.output
    model = NluModel.load(cli_env / "nlu-model.pkl")
    parsed = model.parse("报销凭证在哪弄")
    assert parsed.intent == f"faq/{invoice.id}" and parsed.decision == "answer"  # learned from the confirmed pair

    out = cli_env / "rasa"
    result = await _invoke(["nlu", "export", "--format", "rasa", "--out", str(out)])
    assert result.exit_code == 0, result.output
    domain = yaml.safe_load((out / "domain.yml").read_text(encoding="utf-8"))
    assert len([k for k in domain["responses"] if k.startswith("utter_faq/")]) == seeded_faq
    assert "faq" in domain["intents"] and "human" in domain["intents"]


async def _invoke(args: list[str]):  # type: ignore[no-untyped-def]
    """The CLI runs its own event loop: call it from a worker thread."""
    import asyncio

    return await asyncio.to_thread(runner.invoke, app, args)
