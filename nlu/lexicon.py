"""The e-commerce lexicon FAQ matching folds customers' words with (`config/nlu/lexicon.yml`).

A brand's FAQ is small: "退掉" never meets "退货", "票" never meets "发票" unless both sides are
rewritten to one word. `Lexicon.apply` rewrites normalised text with one compiled regex (longest
variant first, so "优惠券" stays itself while "券" becomes it) and drops fillers and order
numbers; it costs a few microseconds a message.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

import yaml

LEXICON_FILE = Path(__file__).resolve().parent.parent / "config" / "nlu" / "lexicon.yml"
_NUMBER = re.compile(r"\d{5,}")  # order, tracking and phone numbers: context, not the question
_PUNCT = re.compile(r"[\s,，。.!！~～、;；:：]+")


class Lexicon:
    def __init__(self, synonyms: dict[str, list[str]] | None = None, drop: list[str] | None = None) -> None:
        self.canonical: dict[str, str] = {}
        for target, variants in (synonyms or {}).items():
            for variant in [target, *variants]:
                self.canonical.setdefault(str(variant), str(target))
        for word in drop or ():
            self.canonical.setdefault(str(word), "")
        alternatives = sorted(self.canonical, key=lambda w: (-len(w), w))
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        self.digest = hashlib.sha256(json.dumps(sorted(self.canonical.items())).encode()).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lexicon:
        if not path.is_file():
            return cls()
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(doc.get("synonyms") or {}, doc.get("drop") or [])

    def apply(self, norm: str) -> str:
        """The text with variants replaced by their canonical word, fillers and long numbers removed
        (empty when nothing else was said)."""
        text = _NUMBER.sub(" ", norm)
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: self.canonical[m.group(0)], text)
        return _PUNCT.sub(" ", text).strip()  # empty: only greetings and fillers


@lru_cache(maxsize=1)
def shipped_lexicon() -> Lexicon:
    return Lexicon.load()
