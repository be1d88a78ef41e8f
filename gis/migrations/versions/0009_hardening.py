"""hardening: one published plan per territory, ids never reused (SQLite), throttle, revoked tokens

- A partial unique index allows one ``published`` plan per territory (concurrent publishes
  left several); territories that already have several keep the newest published.
- On SQLite, ``territories``, ``plans``, ``accounts`` and ``api_keys`` are rebuilt with
  ``AUTOINCREMENT``: SQLite otherwise gives a new row the highest id once that row is
  deleted, and these ids key per-process caches (a planner's cached scope of a deleted
  territory let them act on the next upload). The rebuild is SQLite's own procedure (a new
  table from the stored CREATE TABLE text, rows copied, indexes made again) with foreign
  keys off (gis/migrations/env.py), so CHECK constraints and references stay verbatim.
  PostgreSQL's sequences never reuse a value.
- ``throttle``: fixed-window counters shared by every server process (sign-in failures).
- ``revoked_tokens``: tokens voided by signing out, until they would expire.
- ``event_imports`` and ``events.import_id``: a bulk import on SpatiaLite stores its rows in
  short transactions tagged with its id (other writers get in between), and a failed or
  orphaned import's rows are removed by that tag.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:00:00
"""
import re

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

NO_REUSE = ('territories', 'plans', 'accounts', 'api_keys')


def _rebuild(table: str, autoincrement: bool) -> None:
    """Rebuild a SQLite table with (or without) AUTOINCREMENT on its ``id``."""
    conn = op.get_bind()
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    indexes = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL", (table,))]
    if autoincrement:
        new = re.sub(r'\bid INTEGER NOT NULL,', 'id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,',
                     sql, count=1)
        new = re.sub(r',\s*PRIMARY KEY \(id\)', '', new, count=1)
    else:
        new = sql.replace('id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,',
                          'id INTEGER NOT NULL,', 1)
        new = re.sub(r'\)\s*$', ', \n\tPRIMARY KEY (id)\n)', new.rstrip(), count=1)
    if new == sql:
        return
    tmp = f'_rebuild_{table}'
    new = re.sub(rf'^CREATE TABLE "?{table}"?', f'CREATE TABLE {tmp}', new, count=1)
    conn.exec_driver_sql(new)
    conn.exec_driver_sql(f'INSERT INTO {tmp} SELECT * FROM {table}')
    conn.exec_driver_sql(f'DROP TABLE {table}')
    conn.exec_driver_sql(f'ALTER TABLE {tmp} RENAME TO {table}')
    for index in indexes:
        conn.exec_driver_sql(index)


def upgrade() -> None:
    conn = op.get_bind()
    # Several published plans of one territory (left by concurrent publishes): keep the
    # newest, archive the others, so that the index can be made.
    conn.execute(sa.text(
        "UPDATE plans SET status = 'archived' WHERE status = 'published' AND id NOT IN ("
        "SELECT max(id) FROM plans WHERE status = 'published' GROUP BY territory_id)"))
    if conn.dialect.name == 'sqlite':
        for table in NO_REUSE:
            _rebuild(table, True)
    op.create_index('uq_plans_one_published', 'plans', ['territory_id'], unique=True,
                    postgresql_where=sa.text("status = 'published'"),
                    sqlite_where=sa.text("status = 'published'"))
    op.create_table('throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('revoked_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    op.create_index(op.f('ix_revoked_tokens_expires_at'), 'revoked_tokens', ['expires_at'],
                    unique=False)
    op.create_table('event_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    # Plain ALTER TABLE (see 0003: a batch copy would trip over SpatiaLite's triggers).
    op.add_column('events', sa.Column('import_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_events_import_id'), 'events', ['import_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_events_import_id'), table_name='events')
    op.drop_column('events', 'import_id')
    op.drop_table('event_imports')
    op.drop_index(op.f('ix_revoked_tokens_expires_at'), table_name='revoked_tokens')
    op.drop_table('revoked_tokens')
    op.drop_table('throttle')
    op.drop_index('uq_plans_one_published', table_name='plans')
    if op.get_bind().dialect.name == 'sqlite':
        for table in NO_REUSE:
            _rebuild(table, False)
