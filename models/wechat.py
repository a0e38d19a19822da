"""WeChat channel state that must survive restarts: the 微信客服 sync cursor per customer-service account."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class WeChatKfCursor(SQLModel, table=True):
    """Where `kf/sync_msg` stopped for one open_kfid: advanced only after the page's messages are stored,
    so a restart neither skips messages nor (thanks to the message dedup key) answers them twice."""

    __table_args__ = (sa.UniqueConstraint("corp", "open_kfid"),)

    id: int | None = Field(default=None, primary_key=True)
    corp: str = Field(max_length=64)  # configured WeCom account name ("default")
    open_kfid: str = Field(max_length=64)
    cursor: str = Field(default="", max_length=256)
    synced_count: int = 0  # messages taken in through this cursor (diagnostics)
    updated_at: datetime = created_at_field()
