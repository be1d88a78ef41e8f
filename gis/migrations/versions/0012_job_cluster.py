"""jobs on a cluster: the submitting account, towns done and in all (the cancelled state
came with 0010)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('account', sa.String(length=60), nullable=True))
    op.add_column('jobs', sa.Column('towns_done', sa.Integer(), nullable=True))
    op.add_column('jobs', sa.Column('towns_total', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_jobs_account'), 'jobs', ['account'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_jobs_account'), table_name='jobs')
    op.drop_column('jobs', 'towns_total')
    op.drop_column('jobs', 'towns_done')
    op.drop_column('jobs', 'account')
