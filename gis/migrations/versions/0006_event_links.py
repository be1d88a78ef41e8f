"""events: no foreign-key constraints on territory_id, plan_id, grid_id (PostgreSQL)

A bulk import of a million events spent ~23 s of its time in PostgreSQL checking these three
constraints row by row (bench/service_bench.py, 2026-11-22). The values come from the
published plan the router holds, checked once per import; published plans and their grids
are never deleted except with their territory, whose deletion removes its events first
(gis.store.delete_territory). SpatiaLite keeps the constraints: removing them means
rebuilding a table with a SpatiaLite geometry column, which 0003 avoids, and its import is
not the fast path.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:00:00
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LINKS = (('events_territory_id_fkey', 'territory_id', 'territories', 'CASCADE'),
         ('events_plan_id_fkey', 'plan_id', 'plans', 'SET NULL'),
         ('events_grid_id_fkey', 'grid_id', 'grids', 'SET NULL'))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, _, _, _ in LINKS:
        op.drop_constraint(name, 'events', type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, column, table, ondelete in LINKS:
        op.create_foreign_key(name, 'events', table, [column], ['id'], ondelete=ondelete)
