"""Shared NLU fixtures: the demo FAQ as FaqDocs and one model trained on the shipped data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nlu.config import load_affect_data, load_training_data
from nlu.model import NluModel
from nlu.types import FaqDoc

DEMO_FAQ = Path(__file__).resolve().parents[2] / "config" / "demo_faq.yml"


def demo_faqs() -> list[FaqDoc]:
    doc = yaml.safe_load(DEMO_FAQ.read_text(encoding="utf-8"))
    return [
        FaqDoc(
            id=n,
            question=e["question"],
            similar=tuple(e.get("similar") or ()),
            answer=e["answer"],
            category=e.get("category", ""),
        )
        for n, e in enumerate(doc["entries"], start=1)
    ]


@pytest.fixture(scope="session")
def faqs() -> list[FaqDoc]:
    return demo_faqs()


@pytest.fixture(scope="session")
def model(faqs: list[FaqDoc]) -> NluModel:
    return NluModel.train(load_training_data(), faqs, (), load_affect_data())


def faq_id(faqs: list[FaqDoc], question: str) -> int:
    return next(f.id for f in faqs if f.question == question)
