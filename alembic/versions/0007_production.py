"""production tables (slot owned by the production work; empty until it needs a table)

Revision ID: 0007_production
Revises: 0006_scrm
"""

from collections.abc import Sequence

revision: str = "0007_production"
down_revision: str | None = "0006_scrm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
