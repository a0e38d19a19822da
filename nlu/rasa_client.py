"""Client for a Rasa server's `POST /model/parse`, mapped to Huike's ParseResult.

Rasa's response: {"text", "intent": {"name", "confidence"}, "intent_ranking": [...],
"entities": [{"entity", "value", "start", "end", ...}], "response_selector": {"faq":
{"response": {"intent_response_key": "faq/12", "confidence", ...}, "ranking": [...]}}}.
A circuit breaker stops calling a Rasa that keeps failing, for `reset_after` seconds.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from nlu.data import FAQ_PREFIX
from nlu.types import Entity, FaqHit, ParseResult

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

RASA_FALLBACK = {"nlu_fallback", "out_of_scope"}


class RasaUnavailable(Exception):
    """Rasa did not answer in time, answered with an error, or the breaker is open."""


class CircuitBreaker:
    """Open after `threshold` consecutive failures; half-open (one trial call) after `reset_after` s."""

    def __init__(self, threshold: int = 3, reset_after: float = 30.0) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_after else "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()


def _faq_id(key: str) -> int | None:
    tail = key[len(FAQ_PREFIX) :] if key.startswith(FAQ_PREFIX) else ""
    try:
        return int(tail)
    except ValueError:
        return None


def map_rasa_response(
    body: dict[str, Any], *, faq_questions: dict[int, str], answer: float = 0.55, clarify: float = 0.3
) -> ParseResult:
    """Translate Rasa's /model/parse JSON into a ParseResult (FAQ via the response selector)."""
    text = str(body.get("text", ""))
    intent = body.get("intent") or {}
    name = str(intent.get("name") or "nlu_fallback")
    confidence = float(intent.get("confidence") or 0.0)
    ranking = tuple((str(r.get("name")), float(r.get("confidence") or 0.0)) for r in body.get("intent_ranking") or [])
    entities = tuple(
        Entity(
            str(e.get("entity")),
            e.get("value"),
            int(e.get("start") or 0),
            int(e.get("end") or 0),
            text[int(e.get("start") or 0) : int(e.get("end") or 0)],
        )
        for e in body.get("entities") or []
    )
    hits: list[FaqHit] = []
    selector = (body.get("response_selector") or {}).get("faq") or {}
    for item in selector.get("ranking") or [selector.get("response") or {}]:
        key = str(item.get("intent_response_key") or "")
        fid = _faq_id(key)
        if fid is not None and fid in faq_questions:
            hits.append(FaqHit(fid, faq_questions[fid], round(float(item.get("confidence") or 0.0), 4)))
    hits.sort(key=lambda h: -h.score)
    decision = "fallback"
    if name == "faq" or name.startswith(FAQ_PREFIX):
        if hits and hits[0].score >= answer:
            decision = "answer"
        elif hits and hits[0].score >= clarify:
            decision = "clarify"
        name = f"{FAQ_PREFIX}{hits[0].faq_id}" if hits and decision != "fallback" else "nlu_fallback"
    elif name in RASA_FALLBACK:
        name = "nlu_fallback"
    return ParseResult(
        text=text,
        intent=name,
        confidence=round(confidence, 4),
        ranking=ranking,
        faq=tuple(hits[:3]),
        decision=decision,
        entities=entities,
        extras={"backend": "rasa"},
    )


class RasaClient:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.5,
        breaker: CircuitBreaker | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/model/parse"
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        import httpx  # only the Rasa backend needs it: an embedded-engine worker never loads it

        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout), trust_env=False)
        self._failures = (httpx.HTTPError, ValueError)

    async def parse(self, text: str) -> dict[str, Any]:
        """Rasa's raw JSON; raises RasaUnavailable (and counts the failure) on any problem."""
        if not self.breaker.allow():
            raise RasaUnavailable("circuit open")
        try:
            response = await self._client.post(self.url, json={"text": text}, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
            if not isinstance(body, dict) or "intent" not in body:
                raise ValueError("not a /model/parse response")
        except self._failures as exc:
            self.breaker.failure()
            log.warning("rasa parse failed (%s: %s); breaker %s", type(exc).__name__, exc, self.breaker.state)
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        self.breaker.success()
        return body

    async def close(self) -> None:
        await self._client.aclose()
