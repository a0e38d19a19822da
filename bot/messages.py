"""Channel-neutral message types: channels translate wire formats to and from these.

The engine never sees XML or a platform's JSON; it sees an `InboundMessage` and answers
with `OutboundMessage`s, which each channel renders as well as it can (choices degrade
to numbered text where a channel has no buttons).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Channel(enum.StrEnum):
    WEBCHAT = "webchat"
    WECHAT_OA = "wechat_oa"  # 公众号
    WECOM = "wecom"  # 企业微信 application / external contact
    WECHAT_KF = "wechat_kf"  # 微信客服 (via WeCom)


class Kind(enum.StrEnum):
    """What an inbound message is; events are messages too (subscribe, click …)."""

    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    SHORTVIDEO = "shortvideo"
    LOCATION = "location"
    LINK = "link"
    FILE = "file"
    EVENT = "event"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One thing a customer sent (or did) on a channel.

    `channel_msg_id` is the channel's own id (WeChat MsgId, web-chat client_msg_id, or a
    derived key for events); together with `channel` it is unique and deduplicates retries.
    """

    channel: Channel
    account: str  # which configured account/app received it ("default")
    external_id: str  # the sender's id on that channel (openid, external_userid, visitor id)
    channel_msg_id: str
    kind: Kind
    text: str = ""  # text, voice recognition, link title … what NLU should read
    event: str | None = None  # subscribe, unsubscribe, SCAN, CLICK, add_external_contact …
    payload: dict[str, Any] = field(default_factory=dict)  # everything else the channel parsed
    unionid: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    title: str
    payload: str  # what the customer's answer means, e.g. "faq:12"


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    url: str
    description: str = ""
    picurl: str = ""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One reply to a customer. Channels render what they support and degrade the rest."""

    text: str = ""
    choices: tuple[Choice, ...] = ()
    footer: str = ""  # shown after the choices, e.g. "请回复序号"
    articles: tuple[Article, ...] = ()
    image_media_id: str | None = None
    template: dict[str, Any] | None = None  # WeChat template message (id, data, url)
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"faq_id": 3, "score": 0.91}

    def as_text(self) -> str:
        """Plain-text rendering: choices become a numbered list, articles titled links."""
        lines = [self.text] if self.text else []
        lines += [f"{i}. {c.title}" for i, c in enumerate(self.choices, 1)]
        lines += [f"{a.title} {a.url}".strip() for a in self.articles]
        lines += [self.footer] if self.footer else []
        return "\n".join(lines)

    def to_payload(self) -> dict[str, Any]:
        """JSON form stored in the outbox; channels rebuild it with `from_payload`."""
        return {
            "text": self.as_text(),
            "body": self.text,
            "choices": [{"title": c.title, "payload": c.payload} for c in self.choices],
            "footer": self.footer,
            "articles": [
                {"title": a.title, "url": a.url, "description": a.description, "picurl": a.picurl}
                for a in self.articles
            ],
            "image_media_id": self.image_media_id,
            "template": self.template,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> OutboundMessage:
        return cls(
            text=data.get("body", data.get("text", "")),
            choices=tuple(Choice(**c) for c in data.get("choices") or ()),
            footer=data.get("footer", ""),
            articles=tuple(Article(**a) for a in data.get("articles") or ()),
            image_media_id=data.get("image_media_id"),
            template=data.get("template"),
        )
