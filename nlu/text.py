"""Chinese text handling: normalisation and tokenisation shared by every NLU component.

Normalisation folds full-width to half-width (NFKC), traditional to simplified characters
(character table from OpenCC's data, applied with `str.translate`, so it costs microseconds),
lower-cases Latin letters and collapses whitespace. Tokens come from our own jieba
`Tokenizer` instance so that the brand's user dictionary never leaks into other users of jieba.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import jieba
import jieba.posseg

jieba.setLogLevel(logging.WARNING)

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


HMM = False
TAG_CACHE_SIZE = 20_000
_TAG_CACHE: dict[str, tuple[tuple[str, str], ...]] = {}
_jieba_lock = threading.Lock()
_jieba: tuple[jieba.Tokenizer, jieba.posseg.POSTokenizer] | None = None
_added: set[str] = set()


def _shared_jieba(words: Iterable[str]) -> tuple[jieba.Tokenizer, jieba.posseg.POSTokenizer]:
    """One jieba dictionary per process (it costs ~1 s and ~40 MB); brand words are added to it."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            tok = jieba.Tokenizer()
            tok.initialize()
            _jieba = (tok, jieba.posseg.POSTokenizer(tok))
        tok = _jieba[0]
        for word in words:
            if word not in _added:
                tok.add_word(word, freq=max(2000, tok.suggest_freq(word)), tag="nz")
                _added.add(word)
        return _jieba


class Tokenizer:
    """Tokenises with the process-wide jieba instance plus the brand's words (products, synonyms)."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        self._words = sorted({w for w in (normalize(w) for w in user_words) if w})
        self._tok: jieba.Tokenizer | None = None
        self._pos: jieba.posseg.POSTokenizer | None = None

    @property
    def user_words(self) -> list[str]:
        return list(self._words)

    def _ensure(self) -> tuple[jieba.Tokenizer, jieba.posseg.POSTokenizer]:
        if self._tok is None or self._pos is None:
            self._tok, self._pos = _shared_jieba(self._words)
        return self._tok, self._pos

    def words(self, text: str) -> list[str]:
        """Word tokens of normalised text, spaces dropped."""
        tok, _ = self._ensure()
        return [w for w in tok.lcut(text, HMM=HMM) if w.strip()]

    def tagged(self, text: str) -> list[tuple[str, str]]:
        """(word, part-of-speech) pairs of normalised text, spaces dropped."""
        return list(self._tagged_cached(text))

    def _tagged_cached(self, text: str) -> tuple[tuple[str, str], ...]:
        hit = _TAG_CACHE.get(text)
        if hit is None:
            _, pos = self._ensure()
            # HMM off: its Viterbi over unknown spans costs milliseconds; unknown runs stay characters
            hit = tuple((p.word, p.flag) for p in pos.lcut(text, HMM=HMM) if p.word.strip())
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
