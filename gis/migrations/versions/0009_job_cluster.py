"""jobs on a cluster: the cancelled state, the submitting account, towns done and in all

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:00:00
"""
import re

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OLD = ('queued', 'running', 'done', 'failed')
NEW = (*OLD, 'cancelled')


def _states(values: tuple[str, ...]) -> str:
    return "state IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Replace the CHECK constraint ``job_state`` (the job states allowed)."""
    conn = op.get_bind()
    if conn.dialect.name != 'sqlite':
        op.drop_constraint('job_state', 'jobs', type_='check')
        op.create_check_constraint('job_state', 'jobs', _states(new))
        return
    # SQLite cannot alter a CHECK constraint: rebuild the table from its stored CREATE
    # TABLE text (SQLite's own procedure; no table refers to jobs).
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").scalar()
    indexes = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' "
        "AND sql IS NOT NULL")]
    before = _states(old)
    if before not in sql:
        raise RuntimeError(f"jobs: no CHECK ({before}) in {sql!r}")
    rebuilt = re.sub(r'^CREATE TABLE "?jobs"?', 'CREATE TABLE _rebuild_jobs',
                     sql.replace(before, _states(new), 1), count=1)
    conn.exec_driver_sql(rebuilt)
    conn.exec_driver_sql('INSERT INTO _rebuild_jobs SELECT * FROM jobs')
    conn.exec_driver_sql('DROP TABLE jobs')
    conn.exec_driver_sql('ALTER TABLE _rebuild_jobs RENAME TO jobs')
    for index in indexes:
        conn.exec_driver_sql(index)


def upgrade() -> None:
    op.add_column('jobs', sa.Column('account', sa.String(length=60), nullable=True))
    op.add_column('jobs', sa.Column('towns_done', sa.Integer(), nullable=True))
    op.add_column('jobs', sa.Column('towns_total', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_jobs_account'), 'jobs', ['account'], unique=False)
    _check(OLD, NEW)


def downgrade() -> None:
    op.execute("UPDATE jobs SET state = 'failed' WHERE state = 'cancelled'")
    op.drop_index(op.f('ix_jobs_account'), table_name='jobs')
    op.drop_column('jobs', 'towns_total')
    op.drop_column('jobs', 'towns_done')
    op.drop_column('jobs', 'account')
    _check(NEW, OLD)
