"""``--tags`` with ``--manifest-file``: a run of a previous build runs only the built models the tags select, and a
declared metric direction that contradicts its metric's name is said out loud."""

from __future__ import annotations

from pathlib import Path

import pytest

from madengine import manifest as manifest_mod
from madengine.errors import ConfigError
from madengine.hub import Model
from madengine.manifest import BuiltImage, Manifest
from madengine.results import recording
from madengine.results.perf_csv import PerfRow


def _manifest() -> Manifest:
    images, models = {}, {}
    for name, tags, archs in (("bert", ["nlp"], ["gfx942", "gfx950"]), ("resnet", ["cv"], [""]),
                              ("gpt", ["nlp"], [""])):
        for arch in archs:
            image = f"ci-{name}{'_' + arch if arch else ''}"
            images[image] = BuiltImage(model=name, docker_image=image, dockerfile="docker/x", gpu_architecture=arch)
            models[image] = Model(name=name, tags=tags, args="--bs 8")
    return Manifest(built_images=images, built_models=models)


def test_tags_select_among_the_built_models() -> None:
    full = _manifest()
    nlp = manifest_mod.select(full, ["nlp"], ["gpt"])
    assert sorted(nlp.built_images) == ["ci-bert_gfx942", "ci-bert_gfx950"]  # every architecture's image
    assert manifest_mod.select(full, ["resnet:epochs=2"]).built_models["ci-resnet"].args == "--bs 8 --epochs 2"
    assert len(full.built_images) == 4  # the loaded manifest itself is left as it was
    with pytest.raises(ConfigError, match="no model matches tag 'vision'"):
        manifest_mod.select(full, ["vision"])
    with pytest.raises(ConfigError, match="twice with different args"):
        manifest_mod.select(full, ["bert:bs=1", "bert:bs=2"])


def test_a_declared_direction_that_contradicts_the_metric_is_warned_once(tmp_path: Path, capsys) -> None:
    rec = recording.start(output=tmp_path / "perf.csv", hub=None, manifest=None, ctx={}, target="local")
    rec.directions = {"bert": "lower", "resnet": "lower"}
    rows = [PerfRow(model="bert", status="SUCCESS", performance="10", metric="samples_per_second"),
            PerfRow(model="resnet", status="SUCCESS", performance="3", metric="latency_ms")]
    rec.add(rows)
    rec.add(rows)
    rec.finish()
    err = capsys.readouterr().err
    assert err.count("contradicts its metric") == 1 and "model bert: metric_direction 'lower'" in err
