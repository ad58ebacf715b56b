"""Alembic's environment for the results store: always "online", on the connection ``open_store`` passes in
``config.attributes["connection"]`` (inside its transaction, which holds the migration lock)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=context.config.attributes.get("metadata"),
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
