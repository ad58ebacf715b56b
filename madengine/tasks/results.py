"""``results.ingest``, ``results.runs``, ``results.show``: the results store (:mod:`madengine.results.store`).

Thin: each task opens the store (``--results-db URL``; default: the configured output's ``madengine-results.db``)
and calls :mod:`madengine.results.ingest` or prints what the store holds.
"""

from __future__ import annotations

from typing import Any

from madengine.tasks._common import mad_task, say

_HELP = {
    "csv": "perf.csv to import (this project's, madengine v2's or v1's; repeatable)",
    "results_db": "results store URL (sqlite:///F, postgresql+psycopg://...; default madengine-results.db next to "
                  "the configured perf.csv)",
    "label": "label the imported run(s) (select them with --baseline label:NAME)",
    "limit": "show at most this many runs (newest last; default 20)",
    "json": "print JSON instead of text",
}


def open_from_task(c: Any, results_db: str | None, *, create: bool = False) -> Any:
    """The store a report/results task uses: ``--results-db``, else the context-free default next to the configured
    perf.csv. Only a task that writes (``create=True``: ingest) creates it; the readers need it to exist.

    Raises:
        ConfigError: ``none``, a malformed URL or (readers) no store there; StoreError: the database does not
            answer.
    """
    from madengine import settings
    from madengine.errors import ConfigError
    from madengine.results.store import open_store, resolve_url

    url = resolve_url(results_db, None, settings.resolve(c.config.get("madengine"))["output"])
    if url is None:
        raise ConfigError("--results-db none: this task reads the results store; give its URL")
    return open_store(url, create=create)


@mad_task(iterable=["csv"], help={**_HELP, "across_files": "skip rows any file ingested with this flag holds "
                                   "(copies of one cumulative perf.csv, as madengine v2 leaves them)"})
def ingest(c, csv=None, results_db=None, label=None, across_files=False):
    """Import perf.csv files into the results store; importing one again adds nothing twice."""
    from madengine import console
    from madengine.errors import ConfigError
    from madengine.results.ingest import ingest_csv
    from madengine.results.store import check_label

    if not csv:
        raise ConfigError("results.ingest needs --csv F (repeatable)")
    check_label(label)
    store = open_from_task(c, results_db, create=True)
    try:
        for path in csv:
            done = ingest_csv(store, path, label=label or "", across_files=bool(across_files))
            say(f"{done.path}: {done.read} row(s) read, {done.inserted} new, {done.read - done.inserted} already "
                f"stored (run {done.run_id} in {store.url_shown})")
            if done.unnumbered:
                console.warn(f"{done.path}: {done.unnumbered} SUCCESS row(s) have no finite performance "
                    f"number (e.g. {done.unnumbered_example!r}); they are stored as they are, and no verdict or "
                    "history uses them")
    finally:
        store.close()


@mad_task(help=_HELP)
def runs(c, results_db=None, limit=20, json=False):
    """List the runs in the results store (id, start, target, label, hub commit, rows)."""
    from madengine.results import show

    store = open_from_task(c, results_db)
    try:
        print(show.render_runs(store, int(limit), as_json=bool(json)))
    finally:
        store.close()


@mad_task(help={**_HELP, "row": "the result row's id (the `id` column of report JSON / results.runs --json)"})
def show(c, row, results_db=None, json=False):
    """Print what produced one stored result (run, command, image, commit, build fingerprint) and how to replay it."""
    from madengine.results import show as show_mod

    store = open_from_task(c, results_db)
    try:
        print(show_mod.render_row(store, row, as_json=bool(json)))
    finally:
        store.close()
