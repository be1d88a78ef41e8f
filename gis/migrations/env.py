"""Alembic environment: runs gridmap's migrations on the engine handed over by gis.database."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers

from gis.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: use GRIDMAP_DATABASE_URL
    from gis.database import make_engine

    engine = make_engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=alembic_helpers.include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
