"""scrm tables: orders, merges, attributes, consent, tag rules, segments, lifecycle, value, care ledger

Revision ID: 0006_scrm
Revises: 0005_console
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006_scrm"
down_revision: str | None = "0005_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customattributedef',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customattributedef')),
    sa.UniqueConstraint('key', name=op.f('uq_customattributedef_key'))
    )
    op.create_table('segment',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment')),
    sa.UniqueConstraint('name', name=op.f('uq_segment_name'))
    )
    op.create_table('tagrule',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tag_name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tagrule')),
    sa.UniqueConstraint('name', name=op.f('uq_tagrule_name'))
    )
    op.create_table('carerule',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('channels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('template', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('wechat_template', sa.JSON(), nullable=True),
    sa.Column('send_hour', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['segment_id'], ['segment.id'], name=op.f('fk_carerule_segment_id_segment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carerule')),
    sa.UniqueConstraint('name', name=op.f('uq_carerule_name'))
    )
    op.create_table('consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_consent_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent')),
    sa.UniqueConstraint('customer_id', 'channel', 'purpose', name=op.f('uq_consent_customer_id_channel_purpose'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_order',
    sa.Column('order_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('items', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_customer_order_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_order')),
    sa.UniqueConstraint('order_no', name=op.f('uq_customer_order_order_no'))
    )
    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.create_index('ix_customer_order_customer_time', ['customer_id', 'ordered_at'], unique=False)

    op.create_table('customerevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_customerevent_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customerevent'))
    )
    with op.batch_alter_table('customerevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customerevent_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_customerevent_lookup', ['kind', 'name', 'customer_id', 'created_at'], unique=False)

    op.create_table('customervalue',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('total_spend', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('first_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recency_days', sa.Integer(), nullable=True),
    sa.Column('r', sa.Integer(), nullable=False),
    sa.Column('f', sa.Integer(), nullable=False),
    sa.Column('m', sa.Integer(), nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customervalue'))
    )
    with op.batch_alter_table('customervalue', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customervalue_tier'), ['tier'], unique=False)

    op.create_table('lifecycleevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('from_value', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('to_value', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycleevent'))
    )
    with op.batch_alter_table('lifecycleevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycleevent_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_lifecycleevent_kind_time', ['kind', 'created_at'], unique=False)

    op.create_table('mergerecord',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('moved', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('filled', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['customer.id'], name=op.f('fk_mergerecord_source_id_customer')),
    sa.ForeignKeyConstraint(['target_id'], ['customer.id'], name=op.f('fk_mergerecord_target_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mergerecord'))
    )
    with op.batch_alter_table('mergerecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mergerecord_source_id'), ['source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mergerecord_target_id'), ['target_id'], unique=False)

    op.create_table('caredelivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_caredelivery_customer_id_customer')),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_caredelivery_message_id_message')),
    sa.ForeignKeyConstraint(['outbox_id'], ['outboxmessage.id'], name=op.f('fk_caredelivery_outbox_id_outboxmessage')),
    sa.ForeignKeyConstraint(['rule_id'], ['carerule.id'], name=op.f('fk_caredelivery_rule_id_carerule')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_caredelivery')),
    sa.UniqueConstraint('rule_id', 'customer_id', 'period', name=op.f('uq_caredelivery_rule_id_customer_id_period'))
    )
    with op.batch_alter_table('caredelivery', schema=None) as batch_op:
        batch_op.create_index('ix_caredelivery_customer_time', ['customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_caredelivery_rule_status', ['rule_id', 'status'], unique=False)

    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_verified', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('birthday_calendar', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default='solar'))
        batch_op.add_column(sa.Column('birth_month', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('birth_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lifecycle_stage', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default='潜在'))
        batch_op.add_column(sa.Column('lifecycle_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('member_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('points', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_customer_birth', ['birthday_calendar', 'birth_month', 'birth_day'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # room on every page so the nightly stage/level recompute can update rows in place (HOT):
        # none of the columns it writes is indexed
        op.execute("ALTER TABLE customer SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer RESET (fillfactor)")
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_birth')
        batch_op.drop_column('erased_at')
        batch_op.drop_column('points')
        batch_op.drop_column('member_level')
        batch_op.drop_column('lifecycle_changed_at')
        batch_op.drop_column('lifecycle_stage')
        batch_op.drop_column('birth_day')
        batch_op.drop_column('birth_month')
        batch_op.drop_column('birthday_calendar')
        batch_op.drop_column('phone_verified')

    with op.batch_alter_table('caredelivery', schema=None) as batch_op:
        batch_op.drop_index('ix_caredelivery_rule_status')
        batch_op.drop_index('ix_caredelivery_customer_time')

    op.drop_table('caredelivery')
    with op.batch_alter_table('mergerecord', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mergerecord_target_id'))
        batch_op.drop_index(batch_op.f('ix_mergerecord_source_id'))

    op.drop_table('mergerecord')
    with op.batch_alter_table('lifecycleevent', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycleevent_kind_time')
        batch_op.drop_index(batch_op.f('ix_lifecycleevent_customer_id'))

    op.drop_table('lifecycleevent')
    with op.batch_alter_table('customervalue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customervalue_tier'))

    op.drop_table('customervalue')
    with op.batch_alter_table('customerevent', schema=None) as batch_op:
        batch_op.drop_index('ix_customerevent_lookup')
        batch_op.drop_index(batch_op.f('ix_customerevent_customer_id'))

    op.drop_table('customerevent')
    with op.batch_alter_table('customer_order', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_order_customer_time')

    op.drop_table('customer_order')
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_customer_id'))

    op.drop_table('consent')
    op.drop_table('carerule')
    op.drop_table('tagrule')
    op.drop_table('segment')
    op.drop_table('customattributedef')
