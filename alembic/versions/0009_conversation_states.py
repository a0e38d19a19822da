"""Presence from the console connection and queue timings.

user.last_seen_at: the console's last heartbeat (an agent whose consoles went away goes offline).
conversation.assigned_at: when an agent took it (recent handling times estimate a queued customer's wait).

Revision ID: 0009_conversation_states
Revises: 0008_outbox_recipient
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_conversation_states"
down_revision: str | None = "0008_outbox_recipient"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("assigned_at")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("last_seen_at")
