"""A fake Rasa server on loopback: `POST /model/parse` with Rasa 3.x's real response shape.

Behaviour is switchable per test: answer, answer slowly (past the client's timeout), fail
with HTTP 500, or return something that is not a parse result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeRasa:
    mode: str = "ok"  # ok | slow | error | garbage
    delay: float = 3.0
    faq_id: int = 1
    intent: str = "faq"
    calls: list[str] = field(default_factory=list)

    def response(self, text: str) -> dict[str, Any]:
        key = f"faq/{self.faq_id}"
        return {
            "text": text,
            "intent": {"name": self.intent, "confidence": 0.9731},
            "entities": [
                {
                    "entity": "product",
                    "start": 0,
                    "end": 2,
                    "confidence_entity": 0.99,
                    "value": "炸锅",
                    "extractor": "DIETClassifier",
                    "processors": ["EntitySynonymMapper"],
                },
            ]
            if text.startswith("炸锅")
            else [],
            "text_tokens": [[i, i + 1] for i in range(len(text))],
            "intent_ranking": [
                {"name": self.intent, "confidence": 0.9731},
                {"name": "greet", "confidence": 0.0152},
                {"name": "human", "confidence": 0.0117},
            ],
            "response_selector": {
                "all_retrieval_intents": ["faq"],
                "default": {
                    "response": {
                        "responses": None,
                        "confidence": 0.0,
                        "intent_response_key": None,
                        "utter_action": "utter_None",
                    },
                    "ranking": [],
                },
                "faq": {
                    "response": {
                        "responses": [{"text": "答案"}],
                        "confidence": 0.9412,
                        "intent_response_key": key,
                        "utter_action": f"utter_{key}",
                    },
                    "ranking": [
                        {"confidence": 0.9412, "intent_response_key": key},
                        {"confidence": 0.0311, "intent_response_key": "faq/999999"},
                    ],
                },
            },
        }

    def app(self) -> web.Application:
        async def parse(request: web.Request) -> web.Response:
            body = await request.json()
            self.calls.append(body["text"])
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            if self.mode == "error":
                return web.json_response({"version": "3.6.21", "status": "failure", "code": 500}, status=500)
            if self.mode == "garbage":
                return web.Response(text="<html>proxy error</html>", content_type="text/html")
            return web.json_response(self.response(body["text"]))

        app = web.Application()
        app.router.add_post("/model/parse", parse)
        return app
