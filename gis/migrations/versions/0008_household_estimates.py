"""household estimates: a land-use layer, estimated households per grid and block

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_geospatial_table('land_use',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('use', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('geom', Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['territory_id'], ['territories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_geospatial_index('idx_land_use_geom', 'land_use', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_land_use_territory_id'), 'land_use', ['territory_id'], unique=False)
    # Plain ALTER TABLE (see 0003: a batch copy would trip over SpatiaLite's triggers).
    for table in ('grids', 'blocks'):
        op.add_column(table, sa.Column('households_estimated', sa.Integer(),
                                       server_default='0', nullable=False))


def downgrade() -> None:
    for table in ('blocks', 'grids'):
        op.drop_column(table, 'households_estimated')
    op.drop_index(op.f('ix_land_use_territory_id'), table_name='land_use')
    op.drop_geospatial_index('idx_land_use_geom', table_name='land_use', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('land_use')
