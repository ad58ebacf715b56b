"""Shell templates (Jinja2) for everything madengine hands to a shell: the step script (``templates/run``) and the
sbatch script (``templates/slurm``).

Lookup: the caller's extra directories first (a site may override a template), then ``$MADENGINE_TEMPLATES/<kind>``
or madengine's own ``templates/<kind>``. Filters: ``shquote`` (``shlex.quote(str(value))``: safe for ``$(...)``,
quotes, newlines; ``None`` is ``''``) and ``shname`` (a shell variable name, else
:class:`~madengine.errors.ConfigError`). Undefined template variables are errors.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.validation import ENV_NAME


def shquote(value: Any) -> str:
    """``value`` as one shell word (``shlex.quote(str(value))``); ``None`` becomes ``''``."""
    return shlex.quote("" if value is None else str(value))


def shname(value: Any) -> str:
    """``value`` unchanged when it is a valid shell variable name.

    Raises:
        ConfigError: it is not (names the value and the rule).
    """
    text = str(value)
    if not ENV_NAME.match(text):
        raise ConfigError(f"env_vars: {text!r} is not a valid shell variable name (letters, digits, _; not first a "
                          "digit); rename it")
    return text


def kind_dir(kind: str) -> Path:
    """madengine's own ``templates/<kind>`` (``$MADENGINE_TEMPLATES/<kind>`` when that variable is set)."""
    from madengine import templates_dir

    return templates_dir() / kind


def render(kind: str, name: str, variables: dict[str, Any], extra_dirs: Sequence[Path] = (),
           setting: str = "MADENGINE_TEMPLATES") -> str:
    """Render template ``<kind>/<name>`` with ``variables``.

    ``setting`` names what chose ``extra_dirs`` (for messages, e.g. ``slurm.template_dir``).

    Raises:
        ConfigError: a missing extra directory, a missing or broken template (names the file and ``setting``).
    """
    import jinja2

    for d in extra_dirs:
        if not d.is_dir():
            raise ConfigError(f"{setting}: {d} is not a directory; fix the path or remove the key")
    dirs = [*extra_dirs, kind_dir(kind)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in dirs]), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["shquote"] = shquote
    env.filters["shname"] = shname
    try:
        return str(env.get_template(name).render(**variables))
    except jinja2.TemplateNotFound:
        where = " ".join(str(d) for d in dirs)
        raise ConfigError(f"{kind} template {name} not found in {where}; set {setting} or MADENGINE_TEMPLATES") \
            from None
    except jinja2.TemplateError as e:
        raise ConfigError(f"{kind} template {name}: {e}; fix the template") from None
