"""Presence from the console connection and queue timings.

user.last_seen_at: the console's last heartbeat (an agent whose consoles went away goes offline).
conversation.assigned_at: when an agent took it (recent handling times estimate a queued customer's wait).
widgetconfig: the web-chat widget's welcome message and quick replies (admin, 渠道 page).

Revision ID: 0010_conversation_states
Revises: 0009_insight
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0010_conversation_states"
down_revision: str | None = "0009_insight"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "widgetconfig",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("welcome", sa.String(length=300), nullable=False),
        sa.Column("quick_replies", JSON_TYPE, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("widgetconfig")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("assigned_at")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("last_seen_at")
