"""Alembic environment: runs gridmap's migrations on the engine handed over by gis.database."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers

from gis.models.base import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: use GRIDMAP_DATABASE_URL
    from gis.database import make_engine

    engine = make_engine()

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A table rebuild (0009) drops and renames tables others refer to: with foreign
        # keys on, DROP TABLE would delete the rows that refer to it. Outside a transaction,
        # where the pragma takes effect; on again below, before the connection goes back.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=alembic_helpers.include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        render_as_batch=sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
