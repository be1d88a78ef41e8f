"""events: routing chain, distance, handler, level clock, resolution and feedback

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COLUMNS = [
    ('village_code', sa.String(length=12)),
    ('town_code', sa.String(length=9)),
    ('district_code', sa.String(length=6)),
    ('distance_m', sa.Float()),
    ('other_grid_code', sa.String(length=20)),
    ('handler', sa.String(length=100)),
    ('level_since', sa.DateTime(timezone=True)),
    ('resolved_at', sa.DateTime(timezone=True)),
    ('closed_at', sa.DateTime(timezone=True)),
    ('rating', sa.Integer()),
    ('feedback', sa.Text()),
]


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite >= 3.35 adds and drops columns in place; a batch
    # "move and copy" would trip over SpatiaLite's geometry triggers).
    for name, type_ in COLUMNS:
        op.add_column('events', sa.Column(name, type_, nullable=True))
    op.create_index(op.f('ix_events_village_code'), 'events', ['village_code'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_events_village_code'), table_name='events')
    for name, _ in reversed(COLUMNS):
        op.drop_column('events', name)
