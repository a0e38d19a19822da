"""The embedded NLU model: intents + FAQ retrieval + entities + affect, trained together,
saved as one versioned file.

Routing of one message (`parse`): the intent classifier knows every intent of the training
data plus one pseudo-intent `faq` (all FAQ questions). If `faq` wins, or no intent is
confident while the FAQ is, the result is the retrieval intent `faq/<id>` with the FAQ
decision answer / clarify / fallback. If another intent wins (greet, human, complaint ...),
`intent` says so and `decision` is "fallback" with the FAQ hits kept for reference —
the engine routes by intent first, then by decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nlu.data import FAQ_PREFIX, TrainingData
from nlu.entities import EntityExtractor
from nlu.faq import FaqIndex
from nlu.intents import Analyzed, IntentClassifier
from nlu.lexicon import Lexicon, shipped_lexicon
from nlu.sentiment import AffectModel
from nlu.text import Tokenizer, normalize, shared_tokenizer
from nlu.types import FaqDoc, FaqHit, ParseResult

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAGIC = b"HUIKE-NLU\n"
FAQ_INTENT = "faq"
FALLBACK_INTENT = "nlu_fallback"
INTENT_THRESHOLD = 0.45  # below this a non-FAQ intent does not win against a confident FAQ
# Topic intents name what a message is about without a handler of their own in the engine:
# when one wins, a confident FAQ answer still goes out (decision kept), the intent is reported.
# A learned pair matcher needs a few hundred confirmed pairs to beat plain lexical matching;
# below that, confirmed pairs only become extra ways of asking their FAQ.
MIN_LEARNED_PAIRS = 200
TOPIC_INTENTS = frozenset({"order_status", "refund"})


def _code_version() -> str:
    """Hash of the NLU source: a pickle is only reused by the code that wrote it."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


class ModelFileError(Exception):
    """The model file is missing, corrupt, from another version or for other data."""


@dataclass
class AffectData:
    sentiment: list[tuple[str, int]] = field(default_factory=list)  # (text, 1 = positive)
    anger: list[tuple[str, int]] = field(default_factory=list)  # (text, 1 = angry/urgent)


def fingerprint(
    data: TrainingData, faqs: Sequence[FaqDoc], pairs: Sequence[tuple[str, int]], affect: AffectData | None = None
) -> str:
    """Stable hash of everything a model is trained from: a saved model is reused only if it matches."""
    payload = {
        "v": FORMAT_VERSION,
        "examples": sorted(data.examples),
        "synonyms": sorted(data.synonyms.items()),
        "regexes": sorted((k, sorted(v)) for k, v in data.regexes.items()),
        "lookups": sorted((k, sorted(v)) for k, v in data.lookups.items()),
        "faqs": sorted((f.id, f.question, sorted(f.similar), f.answer) for f in faqs),
        "pairs": sorted(pairs),
        "affect": [sorted(affect.sentiment), sorted(affect.anger)] if affect else None,
        "lexicon": shipped_lexicon().digest,
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


class NluModel:
    def __init__(self, tokenizer: Tokenizer, extractor: EntityExtractor) -> None:
        self.tokenizer = tokenizer
        self.extractor = extractor
        self.intents = IntentClassifier()
        self.faq: FaqIndex | None = None
        self.lexicon: Lexicon = shipped_lexicon()
        self.affect = AffectModel()
        self.fingerprint = ""
        self.train_seconds = 0.0

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        data: TrainingData,
        faqs: Sequence[FaqDoc] = (),
        pairs: Sequence[tuple[str, int]] = (),
        affect: AffectData | None = None,
    ) -> NluModel:
        started = time.perf_counter()
        plain, yaml_faqs = data.split_faq()
        all_faqs = _with_pairs([*faqs, *yaml_faqs], pairs)
        extractor = EntityExtractor(plain.regexes, plain.lookups, plain.synonyms)
        tokenizer = shared_tokenizer([*extractor.vocabulary, *plain.synonyms])
        model = cls(tokenizer, extractor)
        texts = [t for t, _ in plain.examples]
        labels = [i for _, i in plain.examples]
        for faq in all_faqs:
            for text in (faq.question, *faq.similar):
                texts.append(text)
                labels.append(FAQ_INTENT)
        if texts:
            model.intents.fit([model.analyze(t) for t in texts], labels)
        if all_faqs:
            model.faq = FaqIndex(all_faqs, model.analyze_faq)
            pair_rows = [(model.faq.faqs[fid].question, text, 1) for text, fid in pairs if fid in model.faq.faqs]
            if len(pair_rows) >= MIN_LEARNED_PAIRS:
                model.faq.train_matcher(pair_rows, model.analyze_faq)
            model.faq.fit_thresholds(model.analyze_faq)
        if affect:
            model.affect.fit(
                [(*model.analyze_words(t), y) for t, y in affect.sentiment],
                [(*model.analyze_words(t), y) for t, y in affect.anger],
            )
        model.fingerprint = fingerprint(data, faqs, pairs, affect)
        model.train_seconds = time.perf_counter() - started
        return model

    # ---- inference ------------------------------------------------------------------------
    def analyze(self, text: str) -> Analyzed:
        return Analyzed(normalize(text), self.tokenizer)

    def analyze_words(self, text: str) -> tuple[str, list[str]]:
        norm = normalize(text)  # the same segmentation as `analyze` (jieba with POS)
        return norm, [w for w, _ in self.tokenizer.tagged(norm)]

    def analyze_faq(self, text: str) -> tuple[str, list[str]]:
        """Normalised text and words on the FAQ side: the lexicon's words, fillers dropped."""
        return self._faq_view(normalize(text), None)

    def _faq_view(self, norm: str, words: list[str] | None) -> tuple[str, list[str]]:
        folded = self.lexicon.apply(norm)
        if folded == norm and words is not None:
            return norm, words  # nothing folded: the words we have are the right ones
        return folded, [w for w, _ in self.tokenizer.tagged(folded)]

    def suggest(self, text: str, k: int = 3) -> list[FaqHit]:
        if self.faq is None:
            return []
        return self.faq.search(*self.analyze_faq(text), k)

    def parse(self, text: str, *, today: dt.date | None = None) -> ParseResult:
        doc = self.analyze(text)
        ranking = self.intents.rank(doc, k=5) if self.intents.classes else []
        folded, words = self._faq_view(doc.norm, doc.words) if self.faq is not None else ("", [])
        hits = self.faq.search(folded, words, k=3) if self.faq is not None and folded else []
        faq_decision = self.faq.decide(hits) if self.faq is not None else "fallback"
        if self.faq is not None and faq_decision == "clarify":
            hits = self.faq.close_to_best(hits)
        top_intent, top_conf = ranking[0] if ranking else (FALLBACK_INTENT, 0.0)
        faq_wins = top_intent == FAQ_INTENT or (top_conf < INTENT_THRESHOLD and faq_decision == "answer")
        if faq_wins and hits and faq_decision != "fallback":
            intent, confidence, decision = f"{FAQ_PREFIX}{hits[0].faq_id}", hits[0].score, faq_decision
        elif faq_wins or not ranking or not doc.norm:
            intent, confidence, decision = FALLBACK_INTENT, top_conf, "fallback"
        else:
            # the FAQ decision is kept whatever the intent: the engine lets a question beat small talk
            # ("谢谢，会员有啥用") and a confident answer beat affect; pure small talk matches no FAQ
            keep = bool(hits) and faq_decision != "fallback"
            intent, confidence, decision = top_intent, top_conf, faq_decision if keep else "fallback"
        sentiment, anger = self.affect.predict(doc.norm, doc.words)
        return ParseResult(
            text=text,
            intent=intent,
            confidence=round(float(confidence), 4),
            ranking=tuple((name, round(p, 4)) for name, p in ranking),
            faq=tuple(hits),
            decision=decision,
            entities=tuple(self.extractor.extract(text, today=today)),
            sentiment=round(sentiment, 4),
            anger=round(anger, 4),
            extras={"backend": "embedded"},
        )

    # ---- persistence ----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["tokenizer"] = self.tokenizer.user_words  # jieba is rebuilt (shared) on load
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        words = state.pop("tokenizer")
        self.__dict__.update(state)
        self.tokenizer = shared_tokenizer(words)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        """Write atomically: header (magic, version, fingerprint) + pickle, via a temp file + rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"format": FORMAT_VERSION, "code": CODE_VERSION, "fingerprint": self.fingerprint}
        header_line = json.dumps(header).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + header_line)
                pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def load(path: Path, expected_fingerprint: str | None = None) -> NluModel:
        """Load a model file; raise ModelFileError (never anything else) when it cannot be used."""
        try:
            # unpickled from the file, not from a bytes copy of it: no second model-sized peak
            with path.open("rb") as stream:
                return NluModel._read(path, stream, expected_fingerprint)
        except OSError as exc:
            raise ModelFileError(f"cannot read {path}: {exc}") from exc

    @staticmethod
    def _read(path: Path, stream: BinaryIO, expected_fingerprint: str | None) -> NluModel:
        if stream.read(len(MAGIC)) != MAGIC:
            raise ModelFileError(f"{path} is not a Huike NLU model file")
        try:
            header = json.loads(stream.readline())
        except ValueError as exc:
            raise ModelFileError(f"{path}: unreadable header") from exc
        if header.get("format") != FORMAT_VERSION:
            raise ModelFileError(f"{path}: model format {header.get('format')}, this version reads {FORMAT_VERSION}")
        if header.get("code") != CODE_VERSION:
            raise ModelFileError(f"{path}: written by another version of the NLU code")
        if expected_fingerprint is not None and header.get("fingerprint") != expected_fingerprint:
            raise ModelFileError(f"{path}: trained on other data (FAQ or training data changed)")
        try:
            model = pickle.load(stream)  # our own file, written by `save`
        except Exception as exc:  # any unpickling failure means a corrupt file
            raise ModelFileError(f"{path}: corrupt model ({type(exc).__name__}: {exc})") from exc
        if not isinstance(model, NluModel):
            raise ModelFileError(f"{path}: not an NluModel")
        try:
            model.parse("你好")  # a model that cannot parse is as good as corrupt
        except Exception as exc:
            raise ModelFileError(f"{path}: unusable model ({type(exc).__name__}: {exc})") from exc
        return model


def _with_pairs(faqs: Sequence[FaqDoc], pairs: Sequence[tuple[str, int]]) -> list[FaqDoc]:
    """Confirmed (text, faq_id) pairs become extra ways of asking that FAQ."""
    extra: dict[int, list[str]] = {}
    for text, fid in pairs:
        extra.setdefault(fid, []).append(text)
    out = []
    for faq in faqs:
        if faq.id in extra:
            similar = tuple(dict.fromkeys((*faq.similar, *extra[faq.id])))
            faq = FaqDoc(faq.id, faq.question, similar, faq.answer, faq.category)
        out.append(faq)
    return out
