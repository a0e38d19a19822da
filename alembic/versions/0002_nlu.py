"""nlu tables (slot owned by the nlu work; empty until it needs a table)

Revision ID: 0002_nlu
Revises: 0001_core
"""

from collections.abc import Sequence

revision: str = "0002_nlu"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
