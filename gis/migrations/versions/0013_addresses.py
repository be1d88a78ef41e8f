"""addresses: buildings and address points carry an address (and its parts); events keep
the address they came with and the geocoder's level; events that still need a location

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ADDRESS = ('address', 'road', 'house_number', 'compound', 'building_no')


def upgrade() -> None:
    for column in ADDRESS:
        op.add_column('buildings', sa.Column(column, sa.String(length=200), nullable=True))
    op.add_column('events', sa.Column('address', sa.String(length=300), nullable=True))
    op.add_column('events', sa.Column('geocode_level', sa.String(length=16), nullable=True))
    op.create_table('unlocated_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=60), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('reporter', sa.String(length=100), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('geocode', sa.JSON(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('created_by', sa.String(length=60), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index(op.f('ix_unlocated_events_territory_id'), 'unlocated_events',
                    ['territory_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_unlocated_events_territory_id'), table_name='unlocated_events')
    op.drop_table('unlocated_events')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('geocode_level')
        batch.drop_column('address')
    with op.batch_alter_table('buildings') as batch:
        for column in reversed(ADDRESS):
            batch.drop_column(column)
