"""The results store's address: ``--results-db`` / the context's ``results_db`` resolved to an SQLAlchemy URL, and
that URL (or any text holding one) with its password masked for messages and stored command lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError

#: The store's file name next to perf.csv when no URL is given.
DEFAULT_FILE = "madengine-results.db"


def resolve_url(option: str | None, context_value: Any, output: str | Path) -> str | None:
    """The store's SQLAlchemy URL: ``--results-db`` > the context's ``results_db`` > ``sqlite:///<perf.csv
    dir>/madengine-results.db``; ``None`` when it is ``none``/``off`` (no store). A plain path means an SQLite file.

    Raises:
        ConfigError: a value that is neither a URL of a supported database nor a path (exit 4).
    """
    value = option if option not in (None, "") else context_value
    if value in (None, ""):
        return f"sqlite:///{(Path(output).resolve().parent / DEFAULT_FILE)}"
    if not isinstance(value, str):
        raise ConfigError(f"results_db: {value!r} is not text; give a URL (sqlite:///F, postgresql+psycopg://...) "
                          "or 'none'")
    text = value.strip()
    if text.lower() in ("none", "off", "false"):
        return None
    hint = "give sqlite:///FILE, postgresql+psycopg://USER:PASSWORD@HOST/DB, a file path or 'none'"
    if "://" not in text:
        if _SCHEME.match(text) or "@" in text:  # a URL with a typo (`postgresql:/u:pw@h/db`): never a file name
            raise ConfigError(f"--results-db {_mask_userinfo(text)}: not a database URL; {hint}")
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme = text.split("://", 1)[0].lower()
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(f"--results-db: {scheme}:// is not supported; use sqlite:///FILE or "
                          "postgresql+psycopg://USER:PASSWORD@HOST/DB")
    if scheme in ("postgresql", "postgres"):  # psycopg 3 is the driver the postgres extra installs
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
        url.port  # noqa: B018 - parsed lazily: a malformed port or host raises here
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a malformed URL
        raise ConfigError(f"--results-db {_mask_userinfo(text)}: malformed URL; {hint}") from None
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError(f"--results-db {text}: an in-memory database keeps nothing; {hint}")
    return text


_SCHEME = re.compile(r"^[A-Za-z][\w+.-]*:")  # `scheme:`; a file whose name has a colon is given as ./a:b.db


def _mask_userinfo(text: str) -> str:
    """``text`` with whatever stands between a ``:`` and an ``@`` masked (a password in a malformed URL)."""
    return re.sub(r":[^:@/]*@", ":***@", text)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown without its credentials part
        return _mask_userinfo(url)


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)[^@\s]+@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` URL in it replaced by ``***`` (for the
    command line stored with a run: ``--results-db postgresql://team:secret@db/results``)."""
    return _URL_PASSWORD.sub(r"\1***@", text)
