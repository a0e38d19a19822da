"""NluService: load-or-train at start, hot retrain with an atomic swap, Rasa backend with fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nlu.model import NluModel
from nlu.rasa_client import CircuitBreaker
from nlu.service import NluService
from nlu.types import FaqDoc

from .conftest import faq_id
from .fake_rasa import FakeRasa

NEW_FAQ = FaqDoc(
    id=9001,
    question="你们支持以旧换新吗？",
    similar=("旧手机能抵钱吗", "以旧换新怎么参加"),
    answer="支持，门店和App均可参加以旧换新。",
)


async def test_start_trains_saves_and_next_start_loads(tmp_path: Path, faqs: list[FaqDoc]) -> None:
    path = tmp_path / "model.pkl"
    first = NluService(model_path=path)
    await first.start(faqs)
    assert path.exists()
    written = path.stat().st_mtime_ns
    second = NluService(model_path=path)
    await second.start(faqs)
    assert path.stat().st_mtime_ns == written  # loaded, not retrained
    assert (await second.parse("转人工")).intent == "human"


@pytest.mark.parametrize("content", [b"", b"HUIKE-NLU\n{broken json\n", b'HUIKE-NLU\n{"format": 1}\nnot a pickle'])
async def test_corrupt_model_file_is_replaced_not_fatal(
    tmp_path: Path, faqs: list[FaqDoc], content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    service = NluService(model_path=path)
    await service.start(faqs)
    assert "retraining" in caplog.text
    assert (await service.parse("你好")).intent == "greet"
    NluModel.load(path)  # the bad file was replaced by a good one


async def test_faq_change_retrains_and_swaps(tmp_path: Path, faqs: list[FaqDoc]) -> None:
    service = NluService(model_path=tmp_path / "m.pkl")
    await service.start(faqs)
    before = await service.parse("旧手机能抵钱吗")
    assert before.intent != "faq/9001"
    old_model = service.model
    generation = service.generation
    await service.retrain([*faqs, NEW_FAQ])
    after = await service.parse("旧手机可以抵钱吗")
    assert after.intent == "faq/9001" and after.decision == "answer"
    assert service.generation == generation + 1
    # a turn that took the old model before the swap still gets the old answer
    assert old_model is not None and old_model.parse("旧手机能抵钱吗").intent != "faq/9001"


async def test_parse_during_retrain_uses_the_current_model(tmp_path: Path, faqs: list[FaqDoc]) -> None:
    service = NluService(model_path=None)
    await service.start(faqs)
    retrain = asyncio.create_task(service.retrain([*faqs, NEW_FAQ]))
    answers = [await service.parse("转人工") for _ in range(5)]  # the event loop is not blocked
    await retrain
    assert {a.intent for a in answers} == {"human"}
    assert (await service.parse("以旧换新怎么参加")).intent == "faq/9001"


def test_suggest_for_agent_console(model: NluModel, faqs: list[FaqDoc]) -> None:
    hits = model.suggest("请问怎么开发票啊", k=3)
    assert len(hits) == 3
    assert hits[0].faq_id == faq_id(faqs, "怎么开发票？")
    assert hits[0].score >= hits[1].score >= hits[2].score


async def _rasa_service(aiohttp_server: Any, fake: FakeRasa, faqs: list[FaqDoc], wait: float = 0.3) -> NluService:
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    service = NluService(model_path=None, backend="rasa", rasa_url=str(server.make_url("/")), rasa_timeout=wait)
    await service.start(faqs)
    return service


async def test_rasa_backend_maps_the_parse_response(aiohttp_server: Any, faqs: list[FaqDoc]) -> None:
    target = faq_id(faqs, "怎么开发票？")
    fake = FakeRasa(faq_id=target)
    service = await _rasa_service(aiohttp_server, fake, faqs)
    result = await service.parse("炸锅的发票在哪开，昨天买的")
    assert fake.calls == ["炸锅的发票在哪开，昨天买的"]
    assert result.extras["backend"] == "rasa"
    assert result.intent == f"faq/{target}" and result.decision == "answer"
    assert result.faq[0].faq_id == target and result.faq[0].score == pytest.approx(0.9412)
    assert len(result.faq) == 1  # Rasa's unknown faq/999999 is dropped
    assert result.ranking[0] == ("faq", 0.9731)
    entities = {e.entity: e.value for e in result.entities}
    assert entities["product"] == "炸锅"  # from Rasa
    assert "date" in entities  # Huike's own relative dates are added
    await service.close()


async def test_rasa_plain_intent(aiohttp_server: Any, faqs: list[FaqDoc]) -> None:
    service = await _rasa_service(aiohttp_server, FakeRasa(intent="human"), faqs)
    result = await service.parse("找个真人")
    assert result.intent == "human" and result.decision == "fallback"
    await service.close()


@pytest.mark.parametrize("mode", ["slow", "error", "garbage"])
async def test_rasa_slow_or_failing_falls_back_to_embedded(aiohttp_server: Any, faqs: list[FaqDoc], mode: str) -> None:
    fake = FakeRasa(mode=mode, delay=2.0)
    service = await _rasa_service(aiohttp_server, fake, faqs, wait=0.2)
    result = await service.parse("转人工")
    assert result.intent == "human"
    assert result.extras["backend"] == "embedded" and result.extras["fallback_from"] == "rasa"
    await service.close()


async def test_circuit_breaker_stops_calling_a_failing_rasa_and_recovers(
    aiohttp_server: Any, faqs: list[FaqDoc]
) -> None:
    fake = FakeRasa(mode="error")
    service = await _rasa_service(aiohttp_server, fake, faqs)
    assert service.rasa is not None
    service.rasa.breaker = CircuitBreaker(threshold=3, reset_after=0.3)
    for _ in range(6):
        assert (await service.parse("你好")).intent == "greet"
    assert len(fake.calls) == 3  # open after three failures: no more requests
    fake.mode = "ok"
    await asyncio.sleep(0.35)  # half-open: one trial call, it succeeds, the breaker closes
    assert (await service.parse("怎么开发票")).extras["backend"] == "rasa"
    assert service.rasa.breaker.state == "closed"
    await service.close()
