"""plans: who published a plan and the publish note

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (see 0003: a batch copy would trip over SpatiaLite's triggers).
    op.add_column('plans', sa.Column('published_by', sa.String(length=100), nullable=True))
    op.add_column('plans', sa.Column('publish_note', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('plans', 'publish_note')
    op.drop_column('plans', 'published_by')
