"""Outbox index by recipient and send time.

Every WeChat API reply first counts the customer's API replies since their last message (the
reply limit per customer message). Without this index that count read the whole outbox, which
only grows: on a busy account each send paid a scan of every reply ever sent.

Revision ID: 0008_outbox_recipient
Revises: 0007_production
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_outbox_recipient"
down_revision: str | None = "0007_production"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outboxmessage_recipient_sent", "outboxmessage", ["channel", "app_id", "external_id", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_outboxmessage_recipient_sent", table_name="outboxmessage")
