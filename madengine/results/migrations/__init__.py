"""Alembic migrations of the results store (:mod:`madengine.results.store`); run by ``open_store``, never by hand.

A new schema change: add a revision under ``versions/`` (``alembic revision`` with ``script_location`` pointing
here, or by hand after ``0001_initial.py``), update the tables in :func:`madengine.results.store.tables` and
:data:`madengine.results.store.SCHEMA_REVISION`; ``tests/unit/test_store.py`` checks the migrated database equals
the declared tables.
"""
