"""NluService: what the bot engine holds. Parse is cheap; retrain swaps the model atomically.

Requests in flight keep the model reference they started with; `retrain` trains in a
thread (`asyncio.to_thread`) and then replaces the reference in one assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nlu.config import DEFAULT_TRAINING_DIR, load_affect_data, load_training_data
from nlu.data import TrainingData
from nlu.model import AffectData, ModelFileError, NluModel, fingerprint
from nlu.rasa_client import RasaClient, RasaUnavailable, map_rasa_response
from nlu.train import train_in_child
from nlu.types import FaqDoc, FaqHit, ParseResult

log = logging.getLogger(__name__)


class NluService:
    """Holds the current model; parse is cheap; retrain swaps atomically."""

    def __init__(
        self,
        *,
        model_path: Path | None,
        backend: str = "embedded",
        rasa_url: str = "",
        rasa_timeout: float = 1.5,
        training_dir: Path | None = None,
    ) -> None:
        if backend not in ("embedded", "rasa"):
            raise ValueError(f"unknown NLU backend {backend!r}")
        self.model_path = model_path
        self.backend = backend
        self.training_dir = training_dir or DEFAULT_TRAINING_DIR
        self.rasa = RasaClient(rasa_url, timeout=rasa_timeout) if backend == "rasa" and rasa_url else None
        self._model: NluModel | None = None
        self._train_lock = asyncio.Lock()
        self._faq_questions: dict[int, str] = {}
        self.generation = 0  # bumped at every swap (tests and metrics read it)

    @property
    def model(self) -> NluModel | None:
        return self._model

    async def start(self, faqs: Sequence[FaqDoc], pairs: Sequence[tuple[str, int]] = ()) -> None:
        """Load the saved model if it is valid and trained on this data, else train (in a thread)."""
        data, affect = await asyncio.to_thread(self._load_training)
        expected = fingerprint(data, faqs, pairs, affect)
        if self.model_path is not None and self.model_path.exists():
            try:
                model = await asyncio.to_thread(NluModel.load, self.model_path, expected)
            except ModelFileError as exc:
                log.warning("NLU model file not used, retraining: %s", exc)
            else:
                self._swap(model, faqs)
                return
        await self.retrain(faqs, pairs)

    def _load_training(self) -> tuple[TrainingData, AffectData]:
        return load_training_data(self.training_dir), load_affect_data(self.training_dir)

    async def retrain(self, faqs: Sequence[FaqDoc], pairs: Sequence[tuple[str, int]] = ()) -> None:
        """Train on config data + FAQ + confirmed pairs in a thread, save, then swap the reference."""
        faqs, pairs = list(faqs), list(pairs)
        async with self._train_lock:  # one training at a time; the newest call wins last
            model = await asyncio.to_thread(self._train_and_save, faqs, pairs)
            self._swap(model, faqs)

    def _train_and_save(self, faqs: list[FaqDoc], pairs: list[tuple[str, int]]) -> NluModel:
        data = load_training_data(self.training_dir)
        affect = load_affect_data(self.training_dir)
        # in a child process: scikit-learn never enters the serving process (see nlu.train)
        model = train_in_child(data, faqs, pairs, affect)
        model.parse("你好")  # loads the word dictionary here, in this thread, not on a customer's message
        if self.model_path is not None:
            try:
                model.save(self.model_path)
            except OSError as exc:  # a read-only disk must not stop the bot from answering
                log.warning("could not save NLU model to %s: %s", self.model_path, exc)
        log.info("NLU model trained in %.2f s (%d FAQ, %d pairs)", model.train_seconds, len(faqs), len(pairs))
        return model

    def _swap(self, model: NluModel, faqs: Sequence[FaqDoc]) -> None:
        self._faq_questions = {f.id: f.question for f in faqs}
        self._model = model
        self.generation += 1
        # The model holds large vocabularies; moving them out of the cyclic collector's generations
        # keeps full collections (and parse latency spikes) short. Refcounting still frees old models.
        gc.collect()
        gc.freeze()
        _release_free_memory()

    async def parse(self, text: str) -> ParseResult:
        model = self._model  # the reference this request keeps, even if a retrain swaps meanwhile
        if model is None:
            raise RuntimeError("NluService.start() has not completed")
        if self.rasa is not None:
            try:
                body = await self.rasa.parse(text)
            except RasaUnavailable as exc:
                result = model.parse(text)
                return replace(result, extras={**result.extras, "rasa_error": str(exc), "fallback_from": "rasa"})
            mapped = map_rasa_response(body, faq_questions=self._faq_questions)
            # sentiment/anger and Huike's own entities (dates, phones) come from the embedded model
            local = model.parse(text)
            names = {e.entity for e in mapped.entities}
            extra_entities = tuple(e for e in local.entities if e.entity not in names)
            return replace(
                mapped,
                text=text,
                entities=mapped.entities + extra_entities,
                sentiment=local.sentiment,
                anger=local.anger,
            )
        return model.parse(text)

    def suggest(self, text: str, k: int = 3) -> list[FaqHit]:
        """FAQ candidates for the agent console."""
        model = self._model
        return model.suggest(text, k) if model is not None else []

    async def close(self) -> None:
        if self.rasa is not None:
            await self.rasa.close()


def _release_free_memory() -> None:
    """Hand the heap pages that loading a model left free back to the OS: glibc keeps them
    otherwise (~20 MB of a worker's RSS after unpickling a model and the word dictionary)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)
