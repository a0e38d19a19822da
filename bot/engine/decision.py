"""What the bot does with a fresh question, as a pure function of the NLU's reading.

The handlers apply these rules in the router's order (handoff, complaint, FAQ, small talk,
fallback); `reply_kind` composes the same predicates so `huike nlu eval-answers` measures the
decision customers get. Precedence: a confident FAQ answer beats small talk and affect (a
question that starts with 谢谢 or sounds annoyed is still a question); explicit complaint words
and a request for a human beat everything.
"""

from __future__ import annotations

import re
from typing import Literal

from nlu import ParseResult
from scrm.ticket_config import DetectionConfig

HUMAN_WORDS = re.compile(r"转人工|人工客服|人工服务|找人工|真人|客服人员|接人工")
# asks rather than accuses: a question particle at a sentence end, or an A-not-A question
QUESTION = re.compile(r"[吗么嘛呢?？不]\s*[?？]*\s*$|[吗么嘛][?？，,。!！\s]|是不是|能不能|可不可以|有没有")
SMALLTALK_INTENTS = frozenset({"greet", "thanks", "goodbye"})
Kind = Literal["handover", "complaint", "answer", "clarify", "smalltalk", "fallback"]


def wants_human(text: str, intent: str = "", confidence: float = 0.0) -> bool:
    return bool(HUMAN_WORDS.search(text)) or (intent == "human" and confidence >= 0.6)


def question_wins(parsed: ParseResult) -> bool:
    """The FAQ is confident: answer the question rather than the tone around it."""
    return parsed.decision == "answer" and bool(parsed.faq)


def offers_faq(parsed: ParseResult) -> bool:
    """Answer or clarify from the FAQ (greetings and thanks alone match no FAQ: the NLU drops them)."""
    return parsed.decision in ("answer", "clarify") and bool(parsed.faq)


def is_smalltalk(parsed: ParseResult) -> bool:
    return parsed.intent in SMALLTALK_INTENTS and parsed.confidence >= 0.5


def complaint_reason(detection: DetectionConfig, text: str, parsed: ParseResult) -> str | None:
    """Why this message opens the complaint flow ("trigger:投诉", "intent", "anger"), or None."""
    for word in detection.trigger_words:
        if word in text:
            return f"trigger:{word}"
    if question_wins(parsed):
        return None
    if parsed.intent in detection.complaint_intents and parsed.confidence >= detection.min_intent_confidence:
        return "intent"
    if parsed.anger >= detection.min_anger and not QUESTION.search(text):
        return "anger"  # an annoyed-sounding question ("你们还招兼职吗") is still a question
    return None


def reply_kind(text: str, parsed: ParseResult, detection: DetectionConfig) -> Kind:
    """The router's choice for a message outside any flow."""
    if wants_human(text, parsed.intent, parsed.confidence):
        return "handover"
    if complaint_reason(detection, text, parsed) is not None:
        return "complaint"
    if offers_faq(parsed):
        return "answer" if parsed.decision == "answer" else "clarify"
    if is_smalltalk(parsed):
        return "smalltalk"
    return "fallback"
