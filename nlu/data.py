"""Training data: Huike's in-memory form, Rasa YAML (read and write) and the TSV formats of the CLI.

Rasa 3.x `nlu.yml` items understood: `intent` (with `examples`, retrieval intents `faq/<id>`),
`synonym`, `regex`, `lookup`. Entity annotations `[text](entity)` / `[text]{"entity": ..}` in
examples are reduced to their text. Responses of retrieval intents live in `domain.yml`
(`responses: utter_faq/<id>: [{text: ..}]`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlu.types import FaqDoc

FAQ_PREFIX = "faq/"
RASA_VERSION = "3.1"
_ANNOTATION_RE = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass
class TrainingData:
    """Everything the embedded engine learns from, apart from the FAQ (which comes as FaqDocs)."""

    examples: list[tuple[str, str]] = field(default_factory=list)  # (text, intent)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)  # entity name -> patterns
    lookups: dict[str, list[str]] = field(default_factory=dict)  # entity name -> values
    responses: dict[str, str] = field(default_factory=dict)  # retrieval intent -> answer text

    def merge(self, other: TrainingData) -> TrainingData:
        merged = TrainingData(
            examples=self.examples + other.examples,
            synonyms={**self.synonyms, **other.synonyms},
            regexes={k: list(v) for k, v in self.regexes.items()},
            lookups={k: list(v) for k, v in self.lookups.items()},
            responses={**self.responses, **other.responses},
        )
        for name, patterns in other.regexes.items():
            merged.regexes.setdefault(name, []).extend(p for p in patterns if p not in merged.regexes[name])
        for name, values in other.lookups.items():
            merged.lookups.setdefault(name, []).extend(v for v in values if v not in merged.lookups[name])
        return merged

    @property
    def intents(self) -> list[str]:
        return sorted({intent for _, intent in self.examples})

    def split_faq(self) -> tuple[TrainingData, list[FaqDoc]]:
        """Separate retrieval intents `faq/<key>` into FaqDocs (first example = question)."""
        grouped: dict[str, list[str]] = {}
        rest: list[tuple[str, str]] = []
        for text, intent in self.examples:
            if intent.startswith(FAQ_PREFIX):
                grouped.setdefault(intent[len(FAQ_PREFIX) :], []).append(text)
            else:
                rest.append((text, intent))
        docs: list[FaqDoc] = []
        for n, (key, texts) in enumerate(grouped.items()):
            faq_id = int(key) if key.isdigit() else -(n + 1)
            answer = self.responses.get(FAQ_PREFIX + key, "")
            docs.append(FaqDoc(id=faq_id, question=texts[0], similar=tuple(texts[1:]), answer=answer))
        plain = TrainingData(rest, dict(self.synonyms), dict(self.regexes), dict(self.lookups), {})
        return plain, docs


def _example_lines(block: Any, *, annotated: bool = False) -> list[str]:
    if isinstance(block, list):
        lines = [str(x) for x in block]
    else:
        lines = [ln.strip() for ln in str(block or "").splitlines()]
        lines = [ln[1:].strip() for ln in lines if ln.startswith("-")]
    return [_ANNOTATION_RE.sub(r"\1", ln) if annotated else ln for ln in lines if ln]


def parse_rasa_nlu(doc: dict[str, Any]) -> TrainingData:
    data = TrainingData()
    for item in doc.get("nlu") or []:
        if not isinstance(item, dict):
            continue
        examples = _example_lines(item.get("examples"), annotated="intent" in item)
        if "intent" in item:
            data.examples.extend((text, str(item["intent"])) for text in examples)
        elif "synonym" in item:
            canonical = str(item["synonym"])
            data.synonyms.update({variant: canonical for variant in examples})
        elif "regex" in item:
            data.regexes.setdefault(str(item["regex"]), []).extend(examples)
        elif "lookup" in item:
            data.lookups.setdefault(str(item["lookup"]), []).extend(examples)
    for name, variants in (doc.get("responses") or {}).items():
        if str(name).startswith("utter_") and variants:
            first = variants[0]
            text = first.get("text", "") if isinstance(first, dict) else str(first)
            data.responses[str(name)[len("utter_") :]] = text
    return data


def load_rasa_yaml(path: Path) -> TrainingData:
    """One Rasa YAML file (nlu.yml / domain.yml / responses.yml) or a directory of them."""
    files = sorted(path.rglob("*.yml")) + sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    data = TrainingData()
    for file in files:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if isinstance(doc, dict):
            data = data.merge(parse_rasa_nlu(doc))
    return data


def read_tsv(path: Path, columns: Iterable[str]) -> list[list[str]]:
    """Rows of a headed, unquoted UTF-8 TSV, checked against the expected columns."""
    want = list(columns)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[: len(want)]] != want:
            raise ValueError(f"{path}: expected a header {'<TAB>'.join(want)}, got {header!r}")
        return [row[: len(want)] for row in reader if len(row) >= len(want)]


def load_intent_examples(path: Path) -> TrainingData:
    """TSV `text<TAB>intent` or Rasa YAML (by extension)."""
    if path.suffix in (".yml", ".yaml") or path.is_dir():
        return load_rasa_yaml(path)
    return TrainingData(examples=[(t, i) for t, i in read_tsv(path, ("text", "intent")) if t.strip()])


def load_pairs(path: Path) -> list[tuple[str, str, int]]:
    """TSV `text_a<TAB>text_b<TAB>label` (question matching format)."""
    return [(a, b, int(label)) for a, b, label in read_tsv(path, ("text_a", "text_b", "label"))]


def _literal_block(lines: Iterable[str]) -> str:
    return "".join(f"- {line}\n" for line in lines)


class _Block(str):
    """A string dumped as a YAML literal block (Rasa's `examples: |` style)."""


def _block_representer(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


yaml.SafeDumper.add_representer(_Block, _block_representer)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def to_rasa(data: TrainingData, faqs: Iterable[FaqDoc]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(nlu.yml, domain.yml) documents for Rasa 3.x: intents, FAQ as retrieval intent `faq`."""
    nlu: list[dict[str, Any]] = []
    by_intent: dict[str, list[str]] = {}
    for text, intent in data.examples:
        by_intent.setdefault(intent, []).append(_one_line(text))
    for intent, texts in by_intent.items():
        nlu.append({"intent": intent, "examples": _Block(_literal_block(dict.fromkeys(texts)))})
    responses: dict[str, list[dict[str, str]]] = {}
    for faq in faqs:
        texts = [_one_line(t) for t in (faq.question, *faq.similar) if t.strip()]
        nlu.append({"intent": f"{FAQ_PREFIX}{faq.id}", "examples": _Block(_literal_block(dict.fromkeys(texts)))})
        responses[f"utter_{FAQ_PREFIX}{faq.id}"] = [{"text": faq.answer or faq.question}]
    for key, text in data.responses.items():
        responses.setdefault(f"utter_{key}", [{"text": text}])
    grouped_syn: dict[str, list[str]] = {}
    for variant, canonical in data.synonyms.items():
        grouped_syn.setdefault(canonical, []).append(variant)
    for canonical, variants in grouped_syn.items():
        nlu.append({"synonym": canonical, "examples": _Block(_literal_block(variants))})
    for name, patterns in data.regexes.items():
        nlu.append({"regex": name, "examples": _Block(_literal_block(patterns))})
    for name, values in data.lookups.items():
        nlu.append({"lookup": name, "examples": _Block(_literal_block(values))})
    intents = sorted(by_intent) + (["faq"] if responses else [])
    domain: dict[str, Any] = {
        "version": RASA_VERSION,
        "intents": intents,
        "entities": sorted(set(data.regexes) | set(data.lookups)),
        "responses": responses,
    }
    return {"version": RASA_VERSION, "nlu": nlu}, domain


RASA_CONFIG: dict[str, Any] = {
    "recipe": "default.v1",
    "language": "zh",
    "assistant_id": "huike",
    "pipeline": [
        {"name": "JiebaTokenizer"},
        {"name": "RegexFeaturizer"},
        {"name": "CountVectorsFeaturizer"},
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
        {"name": "DIETClassifier", "epochs": 40, "constrain_similarities": True, "random_seed": 42},
        {"name": "EntitySynonymMapper"},
        {
            "name": "ResponseSelector",
            "epochs": 40,
            "retrieval_intent": "faq",
            "constrain_similarities": True,
            "random_seed": 42,
        },
        {"name": "FallbackClassifier", "threshold": 0.3},
    ],
    "policies": [],
}


def write_rasa_project(
    out: Path, data: TrainingData, faqs: Iterable[FaqDoc], *, epochs: int | None = None
) -> list[Path]:
    """Write `config.yml`, `domain.yml` and `data/nlu.yml` so that `rasa train nlu` works in `out`."""
    nlu_doc, domain_doc = to_rasa(data, faqs)
    config = {**RASA_CONFIG, "pipeline": [dict(p) for p in RASA_CONFIG["pipeline"]]}
    if epochs is not None:
        for component in config["pipeline"]:
            if "epochs" in component:
                component["epochs"] = epochs
    (out / "data").mkdir(parents=True, exist_ok=True)
    written = []
    for rel, doc in (("config.yml", config), ("domain.yml", domain_doc), ("data/nlu.yml", nlu_doc)):
        path = out / rel
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000), encoding="utf-8")
        written.append(path)
    return written
