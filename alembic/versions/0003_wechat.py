"""wechat: wechatkfcursor (微信客服 sync cursor per open_kfid)

Revision ID: 0003_wechat
Revises: 0002_nlu
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0003_wechat"
down_revision: str | None = "0002_nlu"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wechatkfcursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("corp", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("open_kfid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("cursor", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("synced_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechatkfcursor")),
        sa.UniqueConstraint("corp", "open_kfid", name=op.f("uq_wechatkfcursor_corp_open_kfid")),
    )


def downgrade() -> None:
    op.drop_table("wechatkfcursor")
