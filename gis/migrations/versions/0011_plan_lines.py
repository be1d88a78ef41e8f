"""plan lines (the inferred streets of a plan), a grid's flag reason and strong barrier inside

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 09:00:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('plan_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('inferred_street', name='line_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('village_code', sa.String(length=12), nullable=True),
    sa.Column('width_m', sa.Float(), nullable=True),
    sa.Column('likeness', sa.Float(), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTILINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plan_id', 'line_no')
    )
    op.create_geospatial_index('idx_plan_lines_geom', 'plan_lines', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_plan_lines_plan_id'), 'plan_lines', ['plan_id'], unique=False)
    # Plain ALTER TABLE (see 0003: a batch copy would trip over SpatiaLite's triggers).
    op.add_column('grids', sa.Column('flag_reason', sa.Text(), nullable=True))
    op.add_column('grids', sa.Column('barrier_inside_m', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('grids', 'barrier_inside_m')
    op.drop_column('grids', 'flag_reason')
    op.drop_index(op.f('ix_plan_lines_plan_id'), table_name='plan_lines')
    op.drop_geospatial_index('idx_plan_lines_geom', table_name='plan_lines', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('plan_lines')
