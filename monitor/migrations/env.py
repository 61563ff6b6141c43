"""Alembic environment for the clinic store.

`monitor.store.Store` runs migrations itself (on open) and passes its connection in
``config.attributes["connection"]``. From the command line (``alembic -c alembic.ini upgrade
head``) the database is ``$MONITOR_DATABASE_URL``, else SQLite in ``$MONITOR_DATA`` (./data).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from monitor.store import METADATA, default_data_dir, default_database_url

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=METADATA,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    data = default_data_dir()
    data.mkdir(parents=True, exist_ok=True)
    engine = create_engine(default_database_url(data))
    with engine.begin() as conn:
        _run(conn)
