"""Customer insight: per-customer scores, personas, product rules, complaint spike alerts.

Revision ID: 0009_insight
Revises: 0008_outbox_recipient
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0009_insight"
down_revision: str | None = "0008_outbox_recipient"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "customerinsight",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("p_repeat_90d", sa.Float(), nullable=True),
        sa.Column("expected_orders_90d", sa.Float(), nullable=True),
        sa.Column("expected_spend_90d", sa.Float(), nullable=True),
        sa.Column("churn_risk", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("persona", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customerinsight")),
    )
    op.create_index(op.f("ix_customerinsight_churn_risk"), "customerinsight", ["churn_risk"])
    op.create_index(op.f("ix_customerinsight_persona"), "customerinsight", ["persona"])
    op.create_table(
        "persona",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("centroid", JSON, nullable=False),
        sa.Column("traits", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persona")),
        sa.UniqueConstraint("name", name=op.f("uq_persona_name")),
    )
    op.create_table(
        "productrule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("antecedent", JSON, nullable=False),
        sa.Column("consequent", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("support", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("lift", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_productrule")),
    )
    op.create_table(
        "complaintalert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("ticket_ids", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaintalert")),
        sa.UniqueConstraint("category", "channel", "hour_start", name=op.f("uq_complaintalert_category_channel_hour_start")),
    )
    op.create_index(op.f("ix_complaintalert_hour_start"), "complaintalert", ["hour_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_complaintalert_hour_start"), table_name="complaintalert")
    op.drop_table("complaintalert")
    op.drop_table("productrule")
    op.drop_table("persona")
    op.drop_index(op.f("ix_customerinsight_persona"), table_name="customerinsight")
    op.drop_index(op.f("ix_customerinsight_churn_risk"), table_name="customerinsight")
    op.drop_table("customerinsight")
