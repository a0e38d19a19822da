"""tickets: ticket, ticketevent, surveyresponse

Revision ID: 0004_tickets
Revises: 0003_wechat
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004_tickets"
down_revision: str | None = "0003_wechat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ticket',
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('severity', sa.String(length=2), nullable=False),
    sa.Column('order_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('contact_preference', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('contact_phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('category_confidence', sa.Float(), nullable=False),
    sa.Column('category_source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('severity_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('skill_group', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_to_id', sa.Integer(), nullable=True),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('root_cause', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('resolution_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('resolution_note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('first_response_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_warn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_warn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handling_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('survey_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminder_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['user.id'], name=op.f('fk_ticket_assignee_id_user')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_ticket_conversation_id_conversation')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_ticket_customer_id_customer')),
    sa.ForeignKeyConstraint(['escalated_to_id'], ['user.id'], name=op.f('fk_ticket_escalated_to_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket')),
    sa.UniqueConstraint('number', name=op.f('uq_ticket_number'))
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_first_response_due'), ['first_response_due'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_order_no'), ['order_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_resolution_due'), ['resolution_due'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_severity'), ['severity'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_waiting_since'), ['waiting_since'], unique=False)

    op.create_table('surveyresponse',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('resolved', sa.Boolean(), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], name=op.f('fk_surveyresponse_conversation_id_conversation')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_surveyresponse_customer_id_customer')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_surveyresponse_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_surveyresponse'))
    )
    with op.batch_alter_table('surveyresponse', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_surveyresponse_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_surveyresponse_kind_time', ['kind', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_surveyresponse_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticketevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], name=op.f('fk_ticketevent_actor_id_user')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticketevent_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticketevent'))
    )
    with op.batch_alter_table('ticketevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticketevent_ticket_id'), ['ticket_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticketevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticketevent_ticket_id'))

    op.drop_table('ticketevent')
    with op.batch_alter_table('surveyresponse', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_surveyresponse_ticket_id'))
        batch_op.drop_index('ix_surveyresponse_kind_time')
        batch_op.drop_index(batch_op.f('ix_surveyresponse_customer_id'))

    op.drop_table('surveyresponse')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_waiting_since'))
        batch_op.drop_index(batch_op.f('ix_ticket_status'))
        batch_op.drop_index(batch_op.f('ix_ticket_severity'))
        batch_op.drop_index(batch_op.f('ix_ticket_resolution_due'))
        batch_op.drop_index(batch_op.f('ix_ticket_order_no'))
        batch_op.drop_index(batch_op.f('ix_ticket_first_response_due'))
        batch_op.drop_index(batch_op.f('ix_ticket_customer_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_category'))
        batch_op.drop_index(batch_op.f('ix_ticket_assignee_id'))

    op.drop_table('ticket')
