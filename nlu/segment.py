"""A compact Chinese word segmenter with part-of-speech tags: jieba's algorithm (no HMM) over
jieba's own dictionary, in a tenth of jieba's memory.

jieba keeps a prefix dictionary (every prefix of every word, ~500k entries) plus a separate
POS table, and importing `jieba.posseg` loads HMM tables we never use (HMM is off: its Viterbi
costs milliseconds per message). A dict of the 349k words alone still costs ~44 MB of
Python objects per process, so here the dictionary is three numpy arrays sorted by the
words' hashes (hash, frequency, tag): ~4 MB. A message's DAG is found by looking up every
substring that could be a word (up to the longest word starting with its first character) in
one vectorised search. Two different strings with the
same 64-bit key would be taken for one another; the odds are ~1e-14 per lookup. Words added
for a brand live in a small dict until `flush` merges them into the arrays. Route scores,
the buffering of single Latin letters/digits and the handling of non-Han blocks follow
`jieba.posseg.POSTokenizer.cut(HMM=False)`, so segmentations match jieba's
(`tests/nlu/test_segment.py` compares them).
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
from array import array
from pathlib import Path

import numpy as np

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


def _key(word: str) -> int:
    """A word's 64-bit key: its hash mixed with its length, because CPython hashes a string's
    internal bytes and "ph" (1 byte a character) has the bytes, so the hash, of "桰" (2 bytes)."""
    return hash(word) ^ len(word)


def _keys(words: list[str]) -> np.ndarray:
    hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words))
    return hashes ^ np.fromiter(map(len, words), dtype=np.int64, count=len(words))


class Segmenter:
    def __init__(self, dictionary: Path | None = None) -> None:
        self.tag_names: list[str] = ["x"]  # tag id -> tag; 0: no tag in the dictionary
        self._tag_ids: dict[str, int] = {"x": 0}
        self.total = 0
        self.longest: dict[str, int] = {}  # first character -> length of its longest word, if over 1
        self._added: dict[str, tuple[int, int]] = {}  # brand words not yet merged: word -> (count, tag id)
        self._lock = threading.Lock()
        self._load(dictionary or jieba_dictionary())

    def _tag_id(self, tag: str) -> int:
        tid = self._tag_ids.get(tag)
        if tid is None:
            tid = self._tag_ids[tag] = len(self.tag_names)
            self.tag_names.append(tag)
        return tid

    def _load(self, path: Path) -> None:
        # array.array, not lists: no Python object per word survives the load
        keys, counts, tags = array("q"), array("q"), array("H")
        total = 0
        longest = self.longest
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 2:
                    continue
                word, count = parts[0], int(parts[1])
                keys.append(_key(word))
                counts.append(count)
                tags.append(self._tag_id(parts[2]) if len(parts) > 2 else 0)
                total += count
                if len(word) > longest.get(word[0], 1):
                    longest[word[0]] = len(word)
        self.total = total
        self._log_total = math.log(total)
        key_arr = np.frombuffer(keys, dtype=np.int64)
        # sorted by hash; of a word listed twice the last line wins (as in a dict)
        order = np.argsort(key_arr, kind="stable")
        last = np.append(key_arr[order][1:] != key_arr[order][:-1], True)
        order = order[last]
        # (hashes, counts, tag ids), replaced as one tuple: a parse in another thread never sees a mix
        self._table = (
            key_arr[order].copy(),
            np.frombuffer(counts, dtype=np.int64)[order].astype(np.int32),
            np.frombuffer(tags, dtype=np.uint16)[order].copy(),
        )

    def _find(self, words: list[str]) -> tuple[list[int], list[int]]:
        """(count, tag id) of each string; count 0 if it is not a word."""
        added = self._added  # before the table: `flush` swaps the table first, then empties this
        keys, all_counts, all_tags = self._table
        hashes = _keys(words)
        pos = np.searchsorted(keys, hashes)
        np.minimum(pos, len(keys) - 1, out=pos)
        found = keys[pos] == hashes
        counts = np.where(found, all_counts[pos], 0).tolist()
        tags = np.where(found, all_tags[pos], 0).tolist()
        if added:
            for i, word in enumerate(words):
                hit = added.get(word)
                if hit is not None:
                    counts[i], tags[i] = hit
        return counts, tags

    def count(self, word: str) -> int:
        return self._find([word])[0][0]

    def tag_of(self, word: str) -> str:
        return self.tag_names[self._find([word])[1][0]]

    def add_word(self, word: str, tag: str = "nz", min_freq: int = 2000) -> None:
        """A brand word that must stay one token (jieba's `add_word(w, max(min_freq, suggest_freq(w)))`)."""
        with self._lock:
            count = max(min_freq, self.suggest_freq(word))
            self._added[word] = (count, self._tag_id(tag))
            self.total += count
            if len(word) > self.longest.get(word[0], 1):
                self.longest[word[0]] = len(word)
            self._log_total = math.log(self.total)

    def flush(self) -> None:
        """Merge the added words into the sorted arrays (lookups stop consulting a dict)."""
        with self._lock:
            if not self._added:
                return
            old_keys, old_counts, old_tags = self._table
            words = list(self._added)
            hashes = _keys(words)
            counts = np.array([c for c, _ in self._added.values()], dtype=np.int32)
            tags = np.array([t for _, t in self._added.values()], dtype=np.uint16)
            pos = np.minimum(np.searchsorted(old_keys, hashes), len(old_keys) - 1)
            known = old_keys[pos] == hashes
            # words already in the dictionary get their new count and tag, the others are inserted
            all_counts, all_tags = old_counts.copy(), old_tags.copy()
            all_counts[pos[known]] = counts[known]
            all_tags[pos[known]] = tags[known]
            keys = np.concatenate([old_keys, hashes[~known]])
            order = np.argsort(keys, kind="stable")
            all_counts = np.concatenate([all_counts, counts[~known]])[order]
            all_tags = np.concatenate([all_tags, tags[~known]])[order]
            self._table = (keys[order], all_counts, all_tags)
            self._added = {}  # after the swap: until then lookups still find the words here

    def suggest_freq(self, word: str) -> int:
        """The smallest frequency that keeps `word` in one piece (jieba's `suggest_freq(word)`)."""
        prob = 1.0
        pieces = [piece for piece, _ in self.tag(word)]
        for count in self._find(pieces)[0] if pieces else []:
            prob *= (count or 1) / self.total
        return max(int(prob * self.total) + 1, self.count(word) or 1)

    def _route(self, text: str) -> tuple[list[int], list[int]]:
        """End index (exclusive) of the best word starting at each position (jieba's `calc`), and
        that word's tag id."""
        n = len(text)
        log_total, longest = self._log_total, self.longest
        # the last end of a word starting at each position: a longer substring cannot be a word
        last = [min(n, start + longest.get(text[start], 1)) for start in range(n)]
        # every candidate (start, end), in the order the dynamic programme visits them
        counts, tags = self._find([text[s:e] for s in range(n - 1, -1, -1) for e in range(last[s], s, -1)])
        best_score = [0.0] * (n + 1)
        best_end = [0] * (n + 1)
        best_tag = [0] * (n + 1)
        k = 0
        for start in range(n - 1, -1, -1):
            top, top_end, top_tag = -math.inf, start + 1, 0
            for end in range(last[start], start, -1):
                count = counts[k]
                # a single character is an option only when no longer word starts here (jieba's DAG)
                if count or (end == start + 1 and top == -math.inf):
                    score = math.log(count or 1) - log_total + best_score[end]
                    # jieba takes the max of (score, end index): ties go to the longer word
                    if score > top:
                        top, top_end, top_tag = score, end, tags[k]
                k += 1
            best_score[start], best_end[start], best_tag[start] = top, top_end, top_tag
        return best_end, best_tag

    def _cut_block(self, block: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        ends, tags = self._route(block)
        latin = ""
        i = 0
        while i < len(block):
            word, tag = block[i : ends[i]], tags[i]
            i = ends[i]
            if _LATIN_CHAR.match(word):
                latin += word
                continue
            if latin:
                out.append((latin, "eng"))
                latin = ""
            out.append((word, self.tag_names[tag]))
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
