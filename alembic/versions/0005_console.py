"""console tables: canned responses, agent-confirmed FAQ matches

Revision ID: 0005_console
Revises: 0004_tickets
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0005_console"
down_revision: str | None = "0004_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cannedresponse",
        sa.Column("shortcut", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_cannedresponse_created_by_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cannedresponse")),
        sa.UniqueConstraint("shortcut", name=op.f("uq_cannedresponse_shortcut")),
    )
    op.create_table(
        "faqconfirmation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("faq_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["user.id"], name=op.f("fk_faqconfirmation_agent_id_user")),
        sa.ForeignKeyConstraint(["faq_id"], ["faqentry.id"], name=op.f("fk_faqconfirmation_faq_id_faqentry")),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"], name=op.f("fk_faqconfirmation_message_id_message")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faqconfirmation")),
    )
    with op.batch_alter_table("faqconfirmation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_faqconfirmation_faq_id"), ["faq_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("faqconfirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faqconfirmation_faq_id"))
    op.drop_table("faqconfirmation")
    op.drop_table("cannedresponse")
