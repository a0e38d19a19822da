"""Chinese text handling: normalisation and tokenisation shared by every NLU component.

Normalisation folds full-width to half-width (NFKC), traditional to simplified characters
(character table from OpenCC's data, applied with `str.translate`, so it costs microseconds),
lower-cases Latin letters and collapses whitespace. Tokens come from `nlu.segment` (jieba's
dictionary and algorithm, compact), one per process, with the brand's user words added.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from nlu.segment import Segmenter

_SPACE_RE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s_table() -> dict[int, str]:
    """Traditional -> simplified single-character table from OpenCC's shipped dictionary."""
    table: dict[int, str] = {}
    try:
        import opencc  # opencc-python-reimplemented ships the plain-text dictionaries

        path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and len(parts[0]) == 1:
                target = parts[1].split(" ")[0]
                if target and target != parts[0]:
                    table[ord(parts[0])] = target
    except (ImportError, OSError):  # pragma: no cover - degrade to no conversion
        logging.getLogger(__name__).warning("OpenCC dictionary not found: no traditional->simplified folding")
    return table


def normalize(text: str) -> str:
    """Canonical form used for every feature: NFKC, simplified, lower-case, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_t2s_table())
    text = _SPACE_RE.sub(" ", text).strip().lower()
    return text


TAG_CACHE_SIZE = 4_096  # ~1 KB an entry: the texts a training pass repeats, not every message a worker sees
_TAG_CACHE: dict[str, tuple[tuple[str, str], ...]] = {}
_segmenter_lock = threading.Lock()
_segmenter: Segmenter | None = None
_added: set[str] = set()


def _shared_segmenter(words: Iterable[str]) -> Segmenter:
    """One dictionary per process (it costs ~0.5 s and ~5 MB); brand words are added to it."""
    global _segmenter
    with _segmenter_lock:
        if _segmenter is None:
            _segmenter = Segmenter()
        new = [w for w in words if w not in _added]
        for word in new:
            _segmenter.add_word(word)
            _added.add(word)
        _segmenter.flush()
        if new:
            _TAG_CACHE.clear()  # cached cuts may split a word that is now one token
        return _segmenter


class Tokenizer:
    """Tokenises with the process-wide segmenter plus the brand's words (products, synonyms)."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        self._words = sorted({w for w in (normalize(w) for w in user_words) if w})
        self._seg: Segmenter | None = None

    @property
    def user_words(self) -> list[str]:
        return list(self._words)

    def _ensure(self) -> Segmenter:
        if self._seg is None:
            self._seg = _shared_segmenter(self._words)
        return self._seg

    def words(self, text: str) -> list[str]:
        """Word tokens of normalised text, spaces dropped (the words of `tagged`)."""
        return [w for w, _ in self._tagged_cached(text)]

    def tagged(self, text: str) -> list[tuple[str, str]]:
        """(word, part-of-speech) pairs of normalised text, spaces dropped."""
        return list(self._tagged_cached(text))

    def _tagged_cached(self, text: str) -> tuple[tuple[str, str], ...]:
        hit = _TAG_CACHE.get(text)
        if hit is None:
            hit = tuple((w, t) for w, t in self._ensure().tag(text) if w.strip())
            if len(_TAG_CACHE) >= TAG_CACHE_SIZE:
                _TAG_CACHE.clear()
            _TAG_CACHE[text] = hit
        return hit

    def __getstate__(self) -> dict[str, object]:
        return {"words": self._words}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["words"])  # type: ignore[misc,arg-type]


def shared_tokenizer(user_words: Iterable[str] = ()) -> Tokenizer:
    """A tokenizer over the shared jieba instance with these user words."""
    return Tokenizer(user_words)
