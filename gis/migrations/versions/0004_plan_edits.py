"""plan edits: edit version of a plan, locked grids, the edit history with undo/redo state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (see 0003: a batch copy would trip over SpatiaLite's triggers).
    op.add_column('plans', sa.Column('edit_version', sa.Integer(), server_default='0',
                                     nullable=False))
    op.add_column('grids', sa.Column('locked', sa.Boolean(), server_default='0',
                                     nullable=False))
    op.create_table('plan_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('op', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('target_seq', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=100), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('version_before', sa.Integer(), nullable=False),
    sa.Column('version_after', sa.Integer(), nullable=False),
    sa.Column('grids', sa.JSON(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plan_id', 'seq')
    )
    op.create_index(op.f('ix_plan_edits_plan_id'), 'plan_edits', ['plan_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_plan_edits_plan_id'), table_name='plan_edits')
    op.drop_table('plan_edits')
    op.drop_column('grids', 'locked')
    op.drop_column('plans', 'edit_version')
