"""What every run of a build manifest shares, whatever the target: the tools plan, the credentials and their
masker, the data providers' config and whether the environment is captured. Loaded once per run, before anything
starts, by every target (``run.local`` on a workstation or a Slurm node, ``run.k8s``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine.workflow import credentials, data, tools

if TYPE_CHECKING:  # pragma: no cover
    from madengine.hub import Model


@dataclass
class RunSetup:
    """``tools``: the context's tools stacked (:func:`madengine.workflow.tools.plan`); ``creds``: credential.json
    with environment overrides; ``masker`` masks their secrets; ``data_config``: data.json merged with the context's
    ``data``; ``sys_env``: run the environment-capture steps."""

    tools: tools.ToolPlan
    creds: dict[str, Any]
    masker: credentials.Masker
    data_config: dict[str, Any]
    sys_env: bool

    def check_data(self, models: Sequence[Model], source: str = "data.json") -> None:
        """Every model's ``data`` is defined (in ``source`` or the context's ``data`` key), before anything runs.

        Raises:
            ConfigError: names the model, the data name and where it was looked for.
        """
        from madengine.errors import ConfigError

        for model in models:
            name = model.data
            if name and name not in self.data_config:
                raise ConfigError(f"model {model.name!r}: data {name!r} is not defined in {source} nor in the "
                                  "context's 'data' key; add it there (or pass --data-config FILE)")

    def cred_env(self, model: Model) -> dict[str, str]:
        """The ``<CRED>_<KEY>`` variables of the model's ``cred`` block (empty without one).

        Raises:
            ConfigError: the model names a block that credential.json does not have.
        """
        return credentials.model_env(self.creds, model.cred, model.name)


def load(hub: Path, ctx: dict[str, Any], *, tools_config: Sequence[str] = (), data_config: str = "data.json",
         sys_env_details: bool | None = None) -> RunSetup:
    """Load the shared parts of a run. ``sys_env_details`` ``None`` means the context's ``gen_sys_env_details``
    (default on); ``data_config`` is a file in the hub (``data.json`` may be absent, any other must exist).

    Raises:
        ConfigError: an unknown tool, a missing or malformed ``--tools-config``, ``--data-config``, credential.json or
            data.json.
    """
    from madengine.errors import ConfigError

    if data_config != "data.json" and not (hub / data_config).is_file():
        raise ConfigError(f"--data-config: {hub / data_config} does not exist (the file is looked up in the hub)")
    tool_plan = tools.plan(ctx.get("tools") or [], tools.load_catalogue(tools_config))
    creds = credentials.load(hub)
    sys_env = sys_env_details if sys_env_details is not None else ctx.get("gen_sys_env_details", True) is not False
    return RunSetup(tool_plan, creds, credentials.Masker(credentials.secret_values(creds)),
                    data.load_config(hub, ctx, data_config), sys_env)


def hub_paths(hub: Path, ctx: dict[str, Any], shared: RunSetup, models: Sequence[Model],
              data_config: str = "data.json") -> list[str]:
    """The hub files and directories (relative paths, existing ones only) a run of ``models`` reads on a node that
    does not share this host's file system: each model's scripts directory, ``scripts/common``, every pre/post
    script of the context and the tools, the custom data scripts of the models' data, the data config and
    ``credential.json`` (which must travel with mode 0600)."""
    from madengine.context import ScriptRef
    from madengine.workflow.plan import script_command

    wanted = [str(script_command(m, "")[0]) for m in models] + ["scripts/common", data_config, CREDENTIALS_FILE]
    refs = list(shared.tools.pre_scripts) + list(shared.tools.post_scripts)
    refs += [r if isinstance(r, ScriptRef) else ScriptRef.model_validate(r)
             for key in ("pre_scripts", "post_scripts") for r in ctx.get(key) or []]
    wanted += [r.path for r in refs]
    for m in models:
        custom = (shared.data_config.get(m.data) or {}).get("custom") or {}
        if custom.get("path"):
            wanted.append(str(custom["path"]))
    return sorted({w for w in wanted if w and (hub / w).exists()})


#: The credentials file of a hub (madengine's name).
CREDENTIALS_FILE = "credential.json"
