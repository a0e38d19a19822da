"""A compact Chinese word segmenter with part-of-speech tags: jieba's algorithm (no HMM) over
jieba's own dictionary, in about half of jieba's memory.

jieba keeps a prefix dictionary (every prefix of every word, ~500k entries) plus a separate
POS table, and importing `jieba.posseg` loads HMM tables we never use (HMM is off: its Viterbi
costs milliseconds per message). Here the dictionary is word -> frequency and word -> tag
only (sharing their key strings); the DAG is found by looking up every substring up to the
longest word instead of walking prefixes, which gives the same DAG. Route scores, the
buffering of single Latin letters/digits and the handling of non-Han blocks follow
`jieba.posseg.POSTokenizer.cut(HMM=False)`, so segmentations match jieba's
(`tests/nlu/test_segment.py` compares them).
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import threading
from pathlib import Path

_HAN_BLOCK = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._]+)")
_SKIP = re.compile("(\r\n|\\s)")
_LATIN = re.compile("[a-zA-Z0-9]+")
_NUMBER = re.compile("[\\.0-9]+")
_LATIN_CHAR = re.compile("^[a-zA-Z0-9]$")


def jieba_dictionary() -> Path:
    """jieba's `dict.txt` (word, frequency, tag), found without importing jieba."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("jieba is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "dict.txt"


class Segmenter:
    def __init__(self, dictionary: Path | None = None) -> None:
        self.freq: dict[str, int] = {}
        self.tags: dict[str, str] = {}
        self.total = 0
        self.max_len = 1
        self._lock = threading.Lock()
        self._load(dictionary or jieba_dictionary())

    def _load(self, path: Path) -> None:
        freq, tags = self.freq, self.tags
        interned: dict[str, str] = {}
        total = 0
        longest = 1
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 2:
                    continue
                word, count = parts[0], int(parts[1])
                freq[word] = count
                total += count
                if len(parts) > 2:
                    tags[word] = interned.setdefault(parts[2], sys.intern(parts[2]))
                longest = max(longest, len(word))
        self.total, self.max_len = total, longest
        self._log_total = math.log(total)

    def add_word(self, word: str, tag: str = "nz", min_freq: int = 2000) -> None:
        """A brand word that must stay one token (jieba's `add_word(w, max(min_freq, suggest_freq(w)))`)."""
        with self._lock:
            count = max(min_freq, self.suggest_freq(word))
            self.freq[word] = count
            self.tags[word] = tag
            self.total += count
            self.max_len = max(self.max_len, len(word))
            self._log_total = math.log(self.total)

    def suggest_freq(self, word: str) -> int:
        """The smallest frequency that keeps `word` in one piece (jieba's `suggest_freq(word)`)."""
        prob = 1.0
        for piece, _ in self.tag(word):
            prob *= self.freq.get(piece, 1) / self.total
        return max(int(prob * self.total) + 1, self.freq.get(word, 1))

    def _route(self, text: str) -> list[int]:
        """End index (exclusive) of the best word starting at each position (jieba's `calc`)."""
        n = len(text)
        freq, log_total, longest = self.freq, self._log_total, self.max_len
        best_score = [0.0] * (n + 1)
        best_end = [0] * (n + 1)
        for start in range(n - 1, -1, -1):
            top, top_end = -math.inf, start + 1
            for end in range(min(n, start + longest), start, -1):
                count = freq.get(text[start:end])
                # a single character is an option only when no longer word starts here (jieba's DAG)
                if count or (end == start + 1 and top == -math.inf):
                    score = math.log(count or 1) - log_total + best_score[end]
                    # jieba takes the max of (score, end index): ties go to the longer word
                    if score > top:
                        top, top_end = score, end
            best_score[start], best_end[start] = top, top_end
        return best_end

    def _cut_block(self, block: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        ends = self._route(block)
        latin = ""
        i = 0
        while i < len(block):
            word = block[i : ends[i]]
            i = ends[i]
            if _LATIN_CHAR.match(word):
                latin += word
                continue
            if latin:
                out.append((latin, "eng"))
                latin = ""
            out.append((word, self.tags.get(word, "x")))
        if latin:
            out.append((latin, "eng"))
        return out

    def tag(self, text: str) -> list[tuple[str, str]]:
        """(word, tag) pairs, as `jieba.posseg.lcut(text, HMM=False)` gives them."""
        out: list[tuple[str, str]] = []
        for block in _HAN_BLOCK.split(text):
            if not block:
                continue
            if _HAN_BLOCK.match(block):
                out.extend(self._cut_block(block))
                continue
            for piece in _SKIP.split(block):
                if not piece:
                    continue
                if _SKIP.match(piece):
                    out.append((piece, "x"))
                    continue
                latin = bool(_LATIN.match(piece))
                for ch in piece:
                    out.append((ch, "m" if _NUMBER.match(ch) else "eng" if latin else "x"))
        return out
