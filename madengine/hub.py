"""Model discovery in a MAD-layout model hub (ROCm/MAD; madengine's ``utils/discover_models.py``), and tag selection.

Sources: ``<hub>/models.json`` (required, a JSON array of model objects), then, per ``<hub>/scripts/<dir>/`` in name
order, either ``models.json`` or ``get_models_json.py`` (both is an error). Models from ``scripts/<dir>/`` are renamed
``<dir>/<name>`` and their ``dockerfile``/``scripts`` paths, written relative to that directory, are re-based with
``os.path.normpath("scripts/<dir>/" + path)``, as madengine does. ``dockercontext`` is *not* re-based: madengine v2
hands it to ``docker build`` as written (relative to the hub root) and MAD relies on that (``scripts/jax-maxtext``
says ``dockercontext="."`` so its Dockerfile can ``COPY scripts/Primus/``). Tags are kept as written (madengine v2).
Paths stay relative to the hub root, which every :class:`Model` carries (``hub_root``, :meth:`Model.hub_path`).

``get_models_json.py`` API: the file is imported (its own directory on ``sys.path`` meanwhile) and must define
``list_models()`` returning an iterable whose items are either

* :class:`CustomModel` instances (imported as MAD files do: ``from madengine.utils.discover_models import
  CustomModel``, falling back to ``madengine.tools.discover_models``; subclasses and extra dataclass fields are fine):
  ``update_model()`` is called, then ``to_dict()``; or
* plain dicts with the keys of a ``models.json`` entry.

Either way ``name``/``dockerfile``/``scripts`` are then treated as in ``scripts/<dir>/models.json``. An exception raised
while importing the file or running ``list_models``/``update_model`` becomes a :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from madengine.errors import ConfigError

#: Path fields of a ``scripts/<dir>/`` model that are re-based onto the hub root (as madengine does).
REBASED_FIELDS = ("dockerfile", "scripts")

_EXPECTED = {"n_gpus": 'an integer such as "8" (or "-1" for all GPUs)',
             "name": "letters, digits and _ . + - / only (it names images, containers and log files)",
             "tags": "a list of strings", "timeout": "an integer",
             "is_deprecated": "a boolean", "distributed": "an object", "env_vars": "an object"}
_DICT_FIELDS = ("distributed", "env_vars")
_ARG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+/-]*$")


@dataclasses.dataclass
class CustomModel:
    """A model returned by a ``get_models_json.py`` file's ``list_models()`` (madengine's dataclass, same fields).

    ``name`` is the short name (discovery prefixes ``<dir>/``); ``dockerfile`` and ``scripts`` are relative to the
    file's directory. Override :meth:`update_model` to adjust fields just before conversion (not name or tags).
    """

    name: str
    dockerfile: str = ""
    dockercontext: str = ""
    scripts: str = ""
    url: str = ""
    cred: str = ""
    owner: str = ""
    data: str = ""
    n_gpus: str = "-1"
    timeout: int = 7200
    training_precision: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    args: str = ""
    multiple_results: str = ""
    skip_gpu_arch: str = ""

    def to_dict(self) -> dict[str, Any]:
        """All fields (including a subclass's) as a new dict."""
        return dataclasses.asdict(self)

    def update_model(self) -> None:
        """Hook called once before conversion; the default does nothing."""


class Model(BaseModel):
    """One ``models.json`` entry (MAD's fields; unknown fields are kept as extras).

    ``n_gpus`` is a string ("-1" = all GPUs; integers are converted); ``tags`` may also be given as a comma-separated
    string (madengine v2 accepts both); ``timeout`` is seconds, ``<= 0`` meaning "no model timeout". Paths are relative
    to ``hub_root`` (the absolute hub directory; None for a model built by hand); ``hub_file`` is the hub file the
    entry came from (e.g. ``scripts/vllm/models.json``). Both are set by :func:`discover` and left out of dumps.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    url: str = ""
    dockerfile: str = ""
    dockercontext: str = ""
    scripts: str = ""
    n_gpus: str = "-1"
    owner: str = ""
    training_precision: str = ""
    tags: list[str] = Field(default_factory=list)
    args: str = ""
    timeout: int = Field(default=7200, le=366 * 24 * 3600)  # seconds; at most a year (<= 0: no limit)
    data: str = ""
    multiple_results: str = ""
    skip_gpu_arch: str = ""
    is_deprecated: bool = False
    cred: str = ""
    additional_docker_run_options: str = ""
    distributed: dict[str, Any] = Field(default_factory=dict)
    env_vars: dict[str, Any] = Field(default_factory=dict)
    # madengine's own fields (not in MAD): whether a larger performance is better, stored with each result
    # ("": inferred from the metric name, madengine.results.stats.infer_direction)
    metric_direction: Literal["higher", "lower", ""] = ""
    # the validity contract (madengine.results.validity): rows a run must print, the smallest valid performance
    # (in the metric's unit; None: any but 0), a metric that must be among the results
    expected_results: int = Field(default=0, ge=0, strict=True)
    min_performance: float | None = Field(default=None, strict=True)
    required_metric: str = ""
    # Set by discover(); not part of the entry (excluded from dumps). Named so no MAD field can clash with them.
    hub_root: Path | None = Field(default=None, exclude=True, repr=False)
    hub_file: str = Field(default="", exclude=True, repr=False)

    @field_validator("n_gpus", mode="before")
    @classmethod
    def _gpus_to_str(cls, value: Any) -> Any:
        return str(value) if type(value) is int else value

    @field_validator("n_gpus")
    @classmethod
    def _gpus_integer(cls, value: str) -> str:
        if not _INTEGER.match(value):
            raise ValueError("an integer such as \"8\", or \"-1\" for all GPUs")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("letters, digits and _ . + - / only (it names images, containers and log files)")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    def hub_path(self, relative: str) -> Path:
        """``relative`` (e.g. ``self.dockerfile``) resolved against :attr:`hub_root` (or the cwd when unknown)."""
        return (self.hub_root or Path.cwd()) / relative


_MODELS = TypeAdapter(list[Model])
_KNOWN_FIELDS = tuple(Model.model_fields)


def _check_field_names(models: list[Model], rel: str) -> None:
    """ConfigError for an unknown field that is a near miss of a known one (``tgas``, ``multiple_result``); other
    unknown fields stay legal (MAD adds fields over time)."""
    for model in models:
        for key in model.__pydantic_extra__ or ():
            close = difflib.get_close_matches(key, _KNOWN_FIELDS, n=1, cutoff=0.75)
            if close:
                raise ConfigError(f"{rel}: model '{model.name}': unknown field {key!r}; did you mean {close[0]!r}?")


def _check_entries(entries: Any, rel: str, dirname: str) -> list[Model]:
    """Validate parsed entries (slow path, precise errors): ConfigError naming file, model, field and type."""
    if not isinstance(entries, list):
        raise ConfigError(f"{rel}: expected a JSON array of model objects, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if type(entry) is not dict:
            raise ConfigError(f"{rel}: entry #{i} must be a JSON object, got {type(entry).__name__}")
        if not isinstance(entry.get("name"), str):
            raise ConfigError(f"{rel}: entry #{i} has no 'name' (a non-empty string is required)")
    try:
        return _MODELS.validate_python(entries)
    except ValidationError as exc:
        raise _type_error(exc, entries, rel, dirname) from None


def _load_json(path: Path, rel: str, dirname: str) -> list[Model]:
    """Validated models of one models.json file; ConfigError naming the file (and line/column when malformed)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{rel}: cannot read: {exc}") from exc
    try:
        return _MODELS.validate_json(raw)  # fast path: parse and validate in one pass
    except ValidationError:
        pass  # re-parse with the json module for a precise error
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{rel}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{rel}: not UTF-8 text: {exc}") from exc
    return _check_entries(entries, rel, dirname)


def _type_error(exc: ValidationError, entries: list[Any], rel: str, dirname: str) -> ConfigError:
    """The first validation error as one line: file, model, field, expected type and what was found."""
    err = exc.errors(include_url=False)[0]
    loc = err["loc"]
    entry = entries[loc[0]] if loc and isinstance(loc[0], int) else None
    model = entry.get("name", f"#{loc[0]}") if isinstance(entry, dict) else f"#{loc[0] if loc else '?'}"
    model = f"{dirname}/{model}" if dirname else model
    if len(loc) < 2:  # not expected: structure and names are checked before validation
        return ConfigError(f"{rel}: model '{model}': {err['msg']}")
    field, where, found = str(loc[1]), "".join(f"[{p}]" for p in loc[2:]), err.get("input")
    shown = repr(found) if len(repr(found)) <= 40 else repr(found)[:37] + "..."
    expected = _EXPECTED.get(field) or str(err["msg"]).removeprefix("Input should be ")  # pydantic's own words
    return ConfigError(f"{rel}: model '{model}': field '{field}' must be {expected}; "
                       f"got {type(found).__name__} {shown}{' at ' + field + where if where else ''}")


def discover(hub_dir: str | os.PathLike[str]) -> list[Model]:
    """All models of the hub at ``hub_dir``, root ``models.json`` first, then ``scripts/<dir>/`` in name order.

    Returns a list of :class:`Model` (paths relative to the hub; ``hub_root`` set). Raises :class:`ConfigError`
    for: a missing root ``models.json``; malformed JSON (file, line, column); a non-array file or a non-object entry;
    an entry without a string ``name``; a field of the wrong type (file, model, field, expected type); a directory
    holding both ``models.json`` and ``get_models_json.py``; a failing ``get_models_json.py``; a duplicate model
    name, or two names that differ only in case or ``/`` vs ``_`` (they would share an image; both sources named).
    """
    root = Path(hub_dir).resolve()
    root_json = root / "models.json"
    if not root_json.is_file():
        raise ConfigError(f"no models.json at {root_json}: pass --hub <dir> or cd into the model hub")

    files: list[tuple[str, str, list[Model]]] = [("", "models.json", _load_json(root_json, "models.json", ""))]
    scripts = root / "scripts"
    if scripts.is_dir():
        for dirname in sorted(e.name for e in os.scandir(scripts) if e.is_dir()):
            sub = scripts / dirname
            has_json, has_py = (sub / "models.json").is_file(), (sub / "get_models_json.py").is_file()
            if has_json and has_py:
                raise ConfigError(f"scripts/{dirname}: both models.json and get_models_json.py found; keep one")
            if has_json:
                rel = f"scripts/{dirname}/models.json"
                files.append((dirname, rel, _load_json(sub / "models.json", rel, dirname)))
            elif has_py:
                rel = f"scripts/{dirname}/get_models_json.py"
                from madengine.utils.discover_models import run_get_models_json  # imports this module

                entries = run_get_models_json(sub / "get_models_json.py", rel, root)
                files.append((dirname, rel, _check_entries(entries, rel, dirname)))

    models: list[Model] = []
    seen: dict[str, str] = {}
    slugs: dict[str, str] = {}
    for dirname, rel, validated in files:
        _check_field_names(validated, rel)
        prefix = f"scripts/{dirname}/"
        rebased: dict[str, str] = {}  # many entries share "../../docker/x" and "run.sh": normpath each once
        for i, model in enumerate(validated):
            fields = model.__dict__  # written directly: the values are validated strings already
            name = fields["name"]
            if not name.strip():
                raise ConfigError(f"{rel}: entry #{i} has an empty 'name'")
            if dirname:
                name = fields["name"] = f"{dirname}/{name}"
                for key in REBASED_FIELDS:
                    value = fields[key]
                    if value:  # "" stays "" (not set), rather than becoming the directory itself
                        if value not in rebased:
                            rebased[value] = os.path.normpath(prefix + value)
                        fields[key] = rebased[value]
            if name in seen:
                where = f"both in {rel}" if seen[name] == rel else f"in {seen[name]} and {rel}"
                raise ConfigError(f"duplicate model name '{name}': defined {where}")
            seen[name] = rel
            slug = name.replace("/", "_").lower()  # what images, containers and logs are named after
            if slug in slugs:
                other = slugs[slug]
                raise ConfigError(f"model names '{other}' ({seen[other]}) and '{name}' ({rel}) both name the image and "
                                  f"logs '{slug}' (case and '/' vs '_' are not told apart); rename one")
            slugs[slug] = name
            fields["hub_root"], fields["hub_file"] = root, rel
        models.extend(validated)
    return models


def _split_commas(tags: str | Iterable[str]) -> list[str]:
    """``--tags a,b`` as ``--tags a --tags b`` (madengine v2 splits each value on commas)."""
    items = [tags] if isinstance(tags, str) else list(tags)
    return [part.strip() for item in items for part in item.split(",")] if items else []


def _parse_tag(raw: str) -> tuple[str, str]:
    """``"m:batch-size=32:x=1"`` → ``("m", " --batch-size 32 --x 1")``; ConfigError when malformed."""
    parts = [p.strip() for p in str(raw).split(":") if p.strip()]
    if not parts:
        raise ConfigError(f"empty tag {raw!r}: give a model name, a tag or 'all'")
    extra = []
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not _ARG_KEY.match(key) or not value:
            raise ConfigError(f"tag '{raw}': extra argument '{part}' must be key=value (e.g. {parts[0]}:batch-size=32)")
        extra.append(f" --{key} {shlex.quote(value)}")  # a value from the command line is one word
    return parts[0], "".join(extra)


def _matcher(selector: str) -> Callable[[Model], bool]:
    """Predicate for one selector: name, tag, ``all``, or v2's scoped ``<dir>/<tag>`` / ``<dir>/all``."""
    scope, slash, sub = selector.partition("/")
    scoped = bool(slash and scope and sub and "/" not in sub)
    prefix = scope + "/"

    def match(m: Model) -> bool:
        if selector == "all" or m.name == selector or selector in m.tags:
            return True
        return scoped and m.name.startswith(prefix) and (sub == "all" or sub in m.tags)

    return match


def _copy(model: Model, args: str) -> Model:
    """A copy of ``model`` with ``args``, sharing no container with the original.

    Built directly from pydantic v2's instance slots (what ``BaseModel.__copy__`` does): ``model_copy`` plus fix-ups
    cost about 3x more, which shows when ``all`` selects thousands of models.
    """
    fields = dict(model.__dict__)
    fields["args"] = args
    fields["tags"] = list(fields["tags"])  # validated list[str]: a shallow copy suffices
    for key in _DICT_FIELDS:
        value = fields[key]
        fields[key] = copy.deepcopy(value) if value else {}
    extra = model.__pydantic_extra__
    new = Model.__new__(type(model))
    object.__setattr__(new, "__dict__", fields)
    object.__setattr__(new, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    object.__setattr__(new, "__pydantic_extra__", (copy.deepcopy(extra) if extra else {}) if extra is not None else None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new


def _no_match(raw: str, selector: str, models: Sequence[Model]) -> ConfigError:
    words = {m.name for m in models}.union(*(m.tags for m in models)) if models else set()
    by_lower = {w.lower(): w for w in sorted(words)}  # case-insensitive: DUMMY finds dummy
    close = [by_lower[w] for w in difflib.get_close_matches(selector.lower(), list(by_lower), n=3, cutoff=0.5)]
    return ConfigError(f"no model matches tag '{raw}'; closest: {', '.join(close) if close else '(none)'}")


def select(models: Sequence[Model], tags: Iterable[str], exclude_tags: Iterable[str] = (),
           include_deprecated: bool = False) -> list[Model]:
    """The models selected by ``tags`` (madengine's ``--tags`` rules), as copies; ``models`` is not modified.

    Each tag item (items are split on commas first, as madengine v2 does: ``a,b`` is ``a`` and ``b``) is
    ``selector[:key=value...]``: the selector matches a model whose name equals it, whose ``tags``
    contain it, every model for ``all``, and (madengine v2 scoped tags) ``<dir>/<tag>`` or ``<dir>/all`` within
    ``scripts/<dir>/``; each ``key=value`` appends `` --key value`` to the selected models' ``args`` (split at the
    first ``=``: ``a=b=c`` gives `` --a b=c``, where madengine gave `` --a b c``). The result is
    the union in first-seen order; the same model selected again with the *same* args is dropped, with different
    args it is kept (``m:bs=32 m:bs=64`` runs twice, as madengine would). Models matching any ``exclude_tags``
    selector (name, tag, scoped tag) are removed afterwards. Deprecated models are dropped unless
    ``include_deprecated``.

    No ``tags`` selects nothing (``[]``). Raises :class:`ConfigError` for an empty or malformed tag, a tag matching nothing ("no model matches tag 'X';
    closest: a, b, c", via difflib over names and tags) or only deprecated models.
    """
    tags = _split_commas(tags)
    picked: list[Model] = []
    seen: set[tuple[str, str]] = set()
    for raw in tags:
        selector, extra = _parse_tag(raw)
        match = _matcher(selector)
        matched = [m for m in models if match(m)]
        if not matched:
            raise _no_match(raw, selector, models)
        live = matched if include_deprecated else [m for m in matched if not m.is_deprecated]
        if not live:
            names = ", ".join(m.name for m in matched[:5])
            raise ConfigError(f"tag '{raw}' matches only deprecated models ({names}); "
                              "include deprecated models to run them")
        for m in live:
            args = m.args + extra
            if (m.name, args) not in seen:
                seen.add((m.name, args))
                picked.append(_copy(m, args))
    excludes = []
    for raw in _split_commas(exclude_tags):
        selector, extra = _parse_tag(raw)
        if extra:
            raise ConfigError(f"exclude tag '{raw}' cannot carry key=value arguments")
        excludes.append(_matcher(selector))
    return [m for m in picked if not any(ex(m) for ex in excludes)] if excludes else picked
