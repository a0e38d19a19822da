"""production tables (slot owned by the production work; empty until it needs a table)

customer fillfactor 80 -> 50: the nightly recompute rewrites lifecycle_stage / member_level (unindexed)
of every customer whose stage or level changed; with a fifth of each page free only ~21% of a
full-base reclassification (first run, new thresholds) fitted on its page as a HOT update, the rest
went to new pages with a new entry in all five customer indexes (1M customers: ~12 s of CPU for
the UPDATE, 7 s of it index maintenance, and the table tripled). Half a page free keeps every
such update on its page. Applies to pages written from now on (existing ones until rewritten).

Revision ID: 0007_production
Revises: 0006_scrm
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_production"
down_revision: str | None = "0006_scrm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer SET (fillfactor = 80)")
