"""The nightly sweep (the library behind ``site.acme.nightly-sweep``): one run per context file, then a
comparison of all of them."""

from __future__ import annotations

import glob
from pathlib import Path

from madengine import api
from madengine.report.compare import compare, render_compare_table
from madengine.report.load import load_sources


def sweep(config_glob: str, tags: list[str], *, hub: Path, out_dir: Path, deploy: str | None) -> tuple[str, int]:
    """Build once, run the models once per config file into ``<out_dir>/<config stem>/perf.csv``, and compare.

    Returns:
        (the comparison table, the number of runs that had a failed row).

    Raises:
        ConfigError: no config file matches, or a config is invalid (names it).
    """
    configs = sorted(Path(p) for p in glob.glob(config_glob))
    if not configs:
        raise api.ConfigError(f"--configs: no file matches {config_glob!r}")
    ctx = api.load_context(context_file=str(configs[0]))
    manifest = api.build(hub, tags, ctx=ctx, manifest_output=out_dir / "build_manifest.json", log_dir=out_dir)
    outputs, failed = [], 0
    for config in configs:
        run_ctx = api.load_context(context_file=str(config), base=manifest.stored_context())
        output = out_dir / config.stem / "perf.csv"
        summary = api.run(manifest, run_ctx, target=deploy, hub=hub, output=output)
        failed += bool(summary.failed)
        outputs.append(output)
    table = render_compare_table(compare(load_sources(outputs, [c.stem for c in configs])))
    return table, failed
