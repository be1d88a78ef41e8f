"""department grids as overlays (多网融合): overlays, their units (source geometry kept) and
adopted alignments of a plan's grids to the units

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0014'
# 0013 is another branch's number: the lead re-points this when merging after it.
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('overlays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('department', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('source_crs', sa.Text(), nullable=False),
    sa.Column('field_map', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['territory_id'], ['territories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('territory_id', 'department'),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_overlays_territory_id'), 'overlays', ['territory_id'], unique=False)
    op.create_geospatial_table('overlay_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('overlay_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('source_wkb', sa.LargeBinary(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='GEOMETRY', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['overlay_id'], ['overlays.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('overlay_id', 'code')
    )
    op.create_geospatial_index('idx_overlay_units_geom', 'overlay_units', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_overlay_units_overlay_id'), 'overlay_units', ['overlay_id'], unique=False)
    op.create_table('overlay_alignments',
    sa.Column('overlay_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('grid_code', sa.String(length=20), nullable=False),
    sa.Column('unit_code', sa.String(length=60), nullable=False),
    sa.ForeignKeyConstraint(['overlay_id'], ['overlays.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('overlay_id', 'plan_id', 'grid_code')
    )
    op.create_index(op.f('ix_overlay_alignments_plan_id'), 'overlay_alignments', ['plan_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_overlay_alignments_plan_id'), table_name='overlay_alignments')
    op.drop_table('overlay_alignments')
    op.drop_index(op.f('ix_overlay_units_overlay_id'), table_name='overlay_units')
    op.drop_geospatial_index('idx_overlay_units_geom', table_name='overlay_units', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('overlay_units')
    op.drop_index(op.f('ix_overlays_territory_id'), table_name='overlays')
    op.drop_table('overlays')
