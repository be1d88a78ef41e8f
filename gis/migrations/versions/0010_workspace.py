"""the workspace: event photos, patrols (日双巡) and their points; a job may be cancelled

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OLD_STATES = ('queued', 'running', 'done', 'failed')
NEW_STATES = (*OLD_STATES, 'cancelled')


def _job_states(states: tuple[str, ...]) -> None:
    check = "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('job_state', 'jobs', type_='check')
        op.create_check_constraint('job_state', 'jobs', check)
    else:  # SQLite changes a CHECK only by copying the table (jobs has no geometry)
        with op.batch_alter_table('jobs', recreate='always') as batch:
            batch.drop_constraint('job_state', type_='check')
            batch.create_check_constraint('job_state', check)


def upgrade() -> None:
    _job_states(NEW_STATES)
    op.create_table('event_photos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=20), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_event_photos_event_id'), 'event_photos', ['event_id'], unique=False)
    op.create_table('patrols',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('grid_code', sa.String(length=20), nullable=False),
    sa.Column('username', sa.String(length=60), nullable=False),
    sa.Column('walker', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index(op.f('ix_patrols_grid_code'), 'patrols', ['grid_code'], unique=False)
    op.create_index(op.f('ix_patrols_started_at'), 'patrols', ['started_at'], unique=False)
    op.create_index(op.f('ix_patrols_territory_id'), 'patrols', ['territory_id'], unique=False)
    op.create_index(op.f('ix_patrols_username'), 'patrols', ['username'], unique=False)
    op.create_table('patrol_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patrol_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('track', 'checkin', name='patrol_point_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrols.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_patrol_points_patrol_id'), 'patrol_points', ['patrol_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_patrol_points_patrol_id'), table_name='patrol_points')
    op.drop_table('patrol_points')
    for column in ('username', 'territory_id', 'started_at', 'grid_code'):
        op.drop_index(op.f(f'ix_patrols_{column}'), table_name='patrols')
    op.drop_table('patrols')
    op.drop_index(op.f('ix_event_photos_event_id'), table_name='event_photos')
    op.drop_table('event_photos')
    op.execute("UPDATE jobs SET state = 'failed' WHERE state = 'cancelled'")
    _job_states(OLD_STATES)
