"""madengine.hub: discovery of a MAD-layout hub and --tags selection (real files in tmp_path, no mocks)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from madengine.errors import ConfigError
from madengine.hub import CustomModel, Model, discover, select


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
    return path


def entry(name: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "url": "", "dockerfile": "docker/dummy", "scripts": "scripts/dummy/run.sh",
                            "n_gpus": "1", "owner": "mad.support@amd.com", "training_precision": "",
                            "tags": ["dummies"], "args": ""}
    base.update(kw)
    return base


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A small hub shaped like madengine's tests/fixtures/dummy."""
    write_json(tmp_path / "models.json", [
        entry("dummy", tags=["dummies", "dummy_test_group_1", "dummy_group_1"]),
        entry("dummy_timeout", timeout=360, tags=["dummies", "timeout"]),
        entry("dummy_ctxtest", dockerfile="docker/dummy_ctxtest", tags=["dummies", "ctxtest"]),
        entry("dummy_old", is_deprecated=True, tags=["dummies", "legacy"]),
        entry("dummy_gpubind", n_gpus=6, multiple_results="results_dummy_gpubind.csv", tags=["gpubind"]),
    ])
    write_json(tmp_path / "scripts/dummy2/models.json", [
        entry("model1", dockerfile="../../docker/dummy", scripts="run.sh", tags=["dummies", "dummy2_group"]),
        entry("model2", dockerfile="../../docker/dummy", scripts="run.sh", tags=["dummy2_group"],
              dockercontext=".", distributed={"launcher": "slurm_multi"}, env_vars={"xP": "1"},
              brand_new_field={"kept": True}),
    ])
    (tmp_path / "scripts/common").mkdir(parents=True)  # no models here: ignored
    return tmp_path


def names(models: list[Model]) -> list[str]:
    return [m.name for m in models]


# ---------------------------------------------------------------- discovery


def test_discover_root_then_subdirs_renamed_and_rebased(hub: Path) -> None:
    models = discover(hub)
    assert names(models) == ["dummy", "dummy_timeout", "dummy_ctxtest", "dummy_old", "dummy_gpubind",
                             "dummy2/model1", "dummy2/model2"]
    m2 = models[-1]
    assert m2.dockerfile == "docker/dummy"  # scripts/dummy2/../../docker/dummy, normalised
    assert m2.scripts == "scripts/dummy2/run.sh"
    assert m2.dockercontext == "."  # not re-based: madengine passes it to docker build relative to the hub root
    assert m2.tags == ["dummy2_group"]  # tags kept as written (v2)
    assert models[0].scripts == "scripts/dummy/run.sh"  # root models untouched


def test_discover_field_types_defaults_and_extras(hub: Path) -> None:
    by_name = {m.name: m for m in discover(hub)}
    assert by_name["dummy_gpubind"].n_gpus == "6"  # int coerced to str
    assert by_name["dummy"].timeout == 7200 and by_name["dummy_timeout"].timeout == 360
    assert by_name["dummy_old"].is_deprecated and not by_name["dummy"].is_deprecated
    m2 = by_name["dummy2/model2"]
    assert m2.distributed == {"launcher": "slurm_multi"} and m2.env_vars == {"xP": "1"}
    assert m2.model_extra == {"brand_new_field": {"kept": True}}
    dumped = m2.model_dump()
    assert dumped["brand_new_field"] == {"kept": True} and "hub_root" not in dumped and "hub_file" not in dumped


def test_discover_records_hub_root_and_source(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(hub / "scripts")
    models = discover("..")
    assert all(m.hub_root == hub.resolve() for m in models)
    assert models[0].hub_file == "models.json" and models[-1].hub_file == "scripts/dummy2/models.json"
    assert models[-1].hub_path(models[-1].scripts) == hub.resolve() / "scripts/dummy2/run.sh"


def test_missing_root_models_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no models\.json at .*pass --hub") as info:
        discover(tmp_path)
    assert info.value.exit_code == 4
    assert str(tmp_path) in str(info.value)


def test_hub_without_scripts_dir(tmp_path: Path) -> None:
    write_json(tmp_path / "models.json", [entry("only")])
    assert names(discover(tmp_path)) == ["only"]


def test_malformed_json_names_file_line_and_column(hub: Path) -> None:
    (hub / "scripts/dummy2/models.json").write_text('[\n  {"name": "x",\n   "tags": [}\n]\n')
    with pytest.raises(ConfigError, match=r"scripts/dummy2/models\.json: invalid JSON at line 3, column 13: Expecting value"):
        discover(hub)


@pytest.mark.parametrize("content, message", [
    ({"name": "x"}, r"models\.json: expected a JSON array of model objects, got dict"),
    (["x"], r"models\.json: entry #0 must be a JSON object, got str"),
    ([{"tags": []}], r"models\.json: entry #0 has no 'name'"),
    ([{"name": 3}], r"models\.json: entry #0 has no 'name'"),
    ([{"name": "  "}], r"models\.json: model '  ': field 'name' must be letters, digits"),
])
def test_bad_structure(tmp_path: Path, content: Any, message: str) -> None:
    write_json(tmp_path / "models.json", content)
    with pytest.raises(ConfigError, match=message):
        discover(tmp_path)


@pytest.mark.parametrize("field, value, expected", [
    ("tags", 5, "a list of strings"),
    ("tags", ["ok", 7], "a list of strings"),
    ("timeout", "soon", "an integer"),
    ("is_deprecated", "maybe", "a boolean"),
    ("args", 32, "a valid string"),
    ("distributed", "slurm", "an object"),
    ("n_gpus", 1.5, "an integer such as"),
    ("metric_direction", "up", "'higher', 'lower' or ''"),
])
def test_wrong_type_is_one_line_with_file_model_field(hub: Path, field: str, value: Any, expected: str) -> None:
    write_json(hub / "scripts/dummy2/models.json", [entry("fine"), entry("broken", **{field: value})])
    with pytest.raises(ConfigError) as info:
        discover(hub)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("scripts/dummy2/models.json: model 'dummy2/broken': ")
    assert f"field '{field}' must be {expected}" in msg


def test_tags_as_comma_string_and_numeric_timeout_string(tmp_path: Path) -> None:
    write_json(tmp_path / "models.json", [entry("m", tags="pyt, vllm,,inference", timeout="600")])
    (m,) = discover(tmp_path)
    assert m.tags == ["pyt", "vllm", "inference"] and m.timeout == 600


def test_both_models_json_and_get_models_json_py(hub: Path) -> None:
    (hub / "scripts/dummy2/get_models_json.py").write_text("def list_models():\n    return []\n")
    with pytest.raises(ConfigError, match=r"scripts/dummy2: both models\.json and get_models_json\.py"):
        discover(hub)


def test_duplicate_names_across_files(hub: Path) -> None:
    write_json(hub / "models.json", [entry("dummy2/model1")])
    with pytest.raises(ConfigError, match=r"duplicate model name 'dummy2/model1': defined in models\.json and "
                                          r"scripts/dummy2/models\.json"):
        discover(hub)


def test_duplicate_names_in_one_file(tmp_path: Path) -> None:
    write_json(tmp_path / "models.json", [entry("a"), entry("a")])
    with pytest.raises(ConfigError, match=r"duplicate model name 'a': defined both in models\.json"):
        discover(tmp_path)


@pytest.mark.parametrize(("root", "sub"), [(["Dcase", "dcase"], []), (["col_x"], ["x"])])
def test_names_that_share_an_image_are_refused(tmp_path: Path, root: list[str], sub: list[str]) -> None:
    """Two names that differ only in case, or in '/' vs '_', would build and run as one image: both are named."""
    write_json(tmp_path / "models.json", [entry(n) for n in root])
    if sub:
        write_json(tmp_path / "scripts" / "col" / "models.json", [entry(n) for n in sub])
    first, second = (root[0], root[1]) if not sub else ("col_x", "col/x")
    with pytest.raises(ConfigError, match=rf"model names '{first}' \(models\.json\) and '{second}' \(.*models\.json\) both "
                                          rf"name the image and logs '{first.lower()}'.*rename one"):
        discover(tmp_path)


# ---------------------------------------------------------------- get_models_json.py

GET_MODELS_CUSTOM = '''
try:
    from madengine.utils.discover_models import CustomModel  # madengine v2
except ImportError:
    from madengine.tools.discover_models import CustomModel  # madengine v1
from helper_dummy3 import TAGS

Model3Data = CustomModel(name="model3", dockerfile="docker/dummy", scripts="run.sh", tags=list(TAGS))

class Dummy3CustomModel(CustomModel):
    def update_model(self):
        self.dockerfile = "../../docker/dummy"
        self.scripts = "run.sh"
        self.args = "--updated"

def list_models():
    return [Model3Data, Dummy3CustomModel(name="model4", tags=list(TAGS))]
'''


def test_get_models_json_with_custom_model(hub: Path) -> None:
    d3 = hub / "scripts/dummy3"
    d3.mkdir()
    (d3 / "get_models_json.py").write_text(GET_MODELS_CUSTOM)
    (d3 / "helper_dummy3.py").write_text('TAGS = ("dummies", "dummy_test_group_3")\n')
    path_before = list(sys.path)
    models = {m.name: m for m in discover(hub)}
    m3, m4 = models["dummy3/model3"], models["dummy3/model4"]
    assert m3.dockerfile == "scripts/dummy3/docker/dummy" and m3.scripts == "scripts/dummy3/run.sh"
    assert m3.n_gpus == "-1" and m3.timeout == 7200 and m3.tags == ["dummies", "dummy_test_group_3"]
    assert m4.dockerfile == "docker/dummy" and m4.args == "--updated"  # update_model() ran before conversion
    assert m4.hub_file == "scripts/dummy3/get_models_json.py"
    assert sys.path == path_before  # its directory was removed again
    assert "helper_dummy3" not in sys.modules  # hub helper modules are forgotten


MAD_STYLE = '''
"""Shaped like MAD's scripts/jax-maxtext/get_models_json.py."""
import os
import sys

THIS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(THIS_DIR, "..")))
from host_device_helper import ARCH_SKIP_GPU

try:
    from madengine.utils.discover_models import CustomModel  # madengine v2
except ImportError:
    from madengine.tools.discover_models import CustomModel  # madengine v1

def list_models():
    return [CustomModel(name=f"maxtext_{arch}_llama2_7B", dockerfile="../../docker/primus_maxtext", dockercontext=".",
                        scripts="run.sh", n_gpus="8", timeout=86400, tags=["maxtext", "jax", arch],
                        args="--config_path x.yaml", multiple_results="primus_perf_output.csv",
                        skip_gpu_arch=skip)
            for arch, skip in sorted(ARCH_SKIP_GPU.items())]
'''


def test_get_models_json_mad_style(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the file itself adds scripts/ for good, as MAD's does
    (hub / "scripts/host_device_helper.py").write_text("ARCH_SKIP_GPU = {'MI300X': 'gfx950', 'MI355X': 'gfx942'}\n")
    write_json(hub / "scripts/jax-maxtext/unused.json", {})
    (hub / "scripts/jax-maxtext/get_models_json.py").write_text(MAD_STYLE)
    picked = select(discover(hub), ["jax-maxtext/all"])
    assert names(picked) == ["jax-maxtext/maxtext_MI300X_llama2_7B", "jax-maxtext/maxtext_MI355X_llama2_7B"]
    m = picked[0]
    assert (m.dockerfile, m.scripts, m.dockercontext) == ("docker/primus_maxtext", "scripts/jax-maxtext/run.sh", ".")
    assert (m.n_gpus, m.timeout, m.skip_gpu_arch) == ("8", 86400, "gfx950")
    assert str(hub.resolve() / "scripts/jax-maxtext") not in sys.path
    assert "host_device_helper" not in sys.modules


def test_get_models_json_with_dicts(hub: Path) -> None:
    d4 = hub / "scripts/dummy4"
    d4.mkdir()
    (d4 / "get_models_json.py").write_text(textwrap.dedent('''
        def list_models():
            return [{"name": f"gen{i}", "dockerfile": "../../docker/dummy", "scripts": "run.sh",
                     "n_gpus": 2, "tags": ["generated"]} for i in range(3)]
    '''))
    gen = select(discover(hub), ["generated"])
    assert names(gen) == ["dummy4/gen0", "dummy4/gen1", "dummy4/gen2"]
    assert gen[0].n_gpus == "2" and gen[0].dockerfile == "docker/dummy"


def test_custom_model_dataclass_defaults() -> None:
    from madengine.tools.discover_models import CustomModel as V1
    from madengine.utils.discover_models import CustomModel as V2

    assert V1 is V2 is CustomModel
    cm = CustomModel(name="x")
    assert cm.to_dict() == {"name": "x", "dockerfile": "", "dockercontext": "", "scripts": "", "url": "", "cred": "",
                            "owner": "", "data": "", "n_gpus": "-1", "timeout": 7200, "training_precision": "",
                            "tags": [], "args": "", "multiple_results": "", "skip_gpu_arch": ""}


def test_custom_model_agrees_with_the_model_record() -> None:
    """MAD's CustomModel stays as MAD files use it, but it is no second model form: each of its fields is a field
    of the one typed record (:class:`Model`) with the same default, so a CustomModel converts without loss."""
    defaults = CustomModel(name="x").to_dict()
    record = Model(name="x")
    assert set(defaults) <= set(Model.model_fields)
    assert {name: getattr(record, name) for name in defaults} == defaults
    assert Model.model_validate(defaults) == record


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('no Primus checkout\\nsecond line')",
     r"scripts/gen/get_models_json\.py: RuntimeError: no Primus checkout$"),
    ("def list_models():\n    return [1 / 0]", r"scripts/gen/get_models_json\.py: ZeroDivisionError: division by zero"),
    ("import not_a_module_anywhere_xyz", r"get_models_json\.py: ModuleNotFoundError: No module named"),
    ("X = 1", r"get_models_json\.py: must define list_models\(\)"),
    ("def list_models():\n    return ['x']", r"get_models_json\.py: list_models\(\) returned a str"),
    ("def list_models():\n    return [{'name': 'a', 'timeout': 'x'}]",
     r"get_models_json\.py: model 'gen/a': field 'timeout' must be an integer"),
    ("import sys\nsys.exit(3)", r"get_models_json\.py: SystemExit: 3"),
])
def test_get_models_json_failures(hub: Path, source: str, message: str) -> None:
    d = hub / "scripts/gen"
    d.mkdir()
    (d / "get_models_json.py").write_text(source)
    path_before = list(sys.path)
    with pytest.raises(ConfigError, match=message) as info:
        discover(hub)
    assert "\n" not in str(info.value)
    assert sys.path == path_before


# ---------------------------------------------------------------- select


def test_select_by_name_tag_and_all(hub: Path) -> None:
    models = discover(hub)
    assert names(select(models, ["dummy"])) == ["dummy"]
    assert names(select(models, ["dummy2_group"])) == ["dummy2/model1", "dummy2/model2"]
    assert names(select(models, ["dummy2/model2"])) == ["dummy2/model2"]
    assert len(select(models, ["all"])) == len(models) - 1  # minus the deprecated one


def test_select_extra_args_on_copies(hub: Path) -> None:
    models = discover(hub)
    (sel,) = select(models, ["dummy:batch-size=32:x=1"])
    assert sel.args == " --batch-size 32 --x 1"
    assert models[0].args == "" and sel is not models[0]
    sel.tags.append("mutated")
    sel.env_vars["K"] = "V"
    assert models[0].tags == ["dummies", "dummy_test_group_1", "dummy_group_1"] and models[0].env_vars == {}
    (m2,) = select(models, ["dummy2/model2"])
    m2.distributed["launcher"] = "x"
    m2.model_extra["brand_new_field"]["kept"] = False  # type: ignore[index]
    orig = models[-1]
    assert orig.distributed == {"launcher": "slurm_multi"} and orig.model_extra == {"brand_new_field": {"kept": True}}
    assert m2.hub_root == orig.hub_root and m2.hub_file == orig.hub_file


def test_select_args_appended_to_existing_args(tmp_path: Path) -> None:
    write_json(tmp_path / "models.json", [entry("m", args="--model_repo x")])
    (sel,) = select(discover(tmp_path), [" m : bs=8 : :mode=fast "])
    assert sel.args == "--model_repo x --bs 8 --mode fast"
    (sel,) = select(discover(tmp_path), ["m:opt=a=b"])
    assert sel.args == "--model_repo x --opt a=b"  # split at the first "="


@pytest.mark.parametrize("tag", ["dummy:batch-size", "dummy:=3", "dummy:bs=", "dummy:b s=1", ":bs=1", "  "])
def test_select_malformed_tag(hub: Path, tag: str) -> None:
    with pytest.raises(ConfigError):
        select(discover(hub), [tag])


def test_select_union_first_seen_order_without_duplicates(hub: Path) -> None:
    models = discover(hub)
    assert names(select(models, ["gpubind", "dummy2_group", "dummies"])) == [
        "dummy_gpubind", "dummy2/model1", "dummy2/model2", "dummy", "dummy_timeout", "dummy_ctxtest"]


def test_select_same_model_with_different_args_is_kept_twice(hub: Path) -> None:
    picked = select(discover(hub), ["dummy:bs=32", "dummy:bs=64", "dummy:bs=32"])
    assert [(m.name, m.args) for m in picked] == [("dummy", " --bs 32"), ("dummy", " --bs 64")]


def test_select_exclude_by_name_and_tag(hub: Path) -> None:
    models = discover(hub)
    assert names(select(models, ["dummies"], exclude_tags=["dummy_timeout", "ctxtest"])) == ["dummy",
                                                                                             "dummy2/model1"]
    assert select(models, ["dummy"], exclude_tags=["dummies"]) == []
    assert names(select(models, ["all"], exclude_tags=["nothing_matches_this"])) == names(select(models, ["all"]))
    with pytest.raises(ConfigError, match="cannot carry key=value"):
        select(models, ["all"], exclude_tags=["dummy:bs=1"])


def test_select_deprecated(hub: Path) -> None:
    models = discover(hub)
    assert "dummy_old" not in names(select(models, ["dummies"]))
    assert "dummy_old" in names(select(models, ["dummies"], include_deprecated=True))
    assert names(select(models, ["legacy"], include_deprecated=True)) == ["dummy_old"]
    with pytest.raises(ConfigError, match=r"tag 'legacy' matches only deprecated models \(dummy_old\)"):
        select(models, ["legacy"])


def test_select_no_match_suggests_closest(hub: Path) -> None:
    with pytest.raises(ConfigError) as info:
        select(discover(hub), ["dummy_timout"])
    msg = str(info.value)
    assert msg.startswith("no model matches tag 'dummy_timout'; closest: dummy_timeout")
    assert info.value.exit_code == 4
    with pytest.raises(ConfigError, match=r"no model matches tag 'zzzzqqq'; closest: \(none\)"):
        select(discover(hub), ["zzzzqqq"])


def test_select_closest_includes_tags(hub: Path) -> None:
    with pytest.raises(ConfigError, match=r"closest: .*gpubind"):
        select(discover(hub), ["gpubnd"])


def test_select_scoped_tags(hub: Path) -> None:
    models = discover(hub)
    assert names(select(models, ["dummy2/all"])) == ["dummy2/model1", "dummy2/model2"]
    assert names(select(models, ["dummy2/dummies"])) == ["dummy2/model1"]  # tag within scripts/dummy2 only
    with pytest.raises(ConfigError):
        select(models, ["nodir/all"])


def test_select_accepts_hand_built_models() -> None:
    models = [Model(name="a", tags=["t"]), Model(name="b", tags=["t"], n_gpus=2)]  # type: ignore[arg-type]
    assert names(select(models, ["t"])) == ["a", "b"]
    assert models[1].n_gpus == "2" and models[0].hub_root is None


@pytest.mark.parametrize(("entry", "needle"), [
    ({"name": "x", "tgas": ["a"]}, "unknown field 'tgas'; did you mean 'tags'?"),
    ({"name": "x", "multiple_result": "r.csv"}, "did you mean 'multiple_results'?"),
    ({"name": "x y"}, "field 'name' must be letters, digits"),
    ({"name": "x;rm -rf /"}, "field 'name' must be letters, digits"),
    ({"name": "x", "n_gpus": "lots"}, "field 'n_gpus' must be an integer"),
])
def test_typos_and_unsafe_values_are_rejected(tmp_path: Path, entry: dict, needle: str) -> None:
    (tmp_path / "models.json").write_text(json.dumps([entry]))
    with pytest.raises(ConfigError) as e:
        discover(tmp_path)
    assert needle in str(e.value)


def test_tag_argument_values_are_single_shell_words(tmp_path: Path) -> None:
    (tmp_path / "models.json").write_text(json.dumps([{"name": "m", "args": "--a 1"}]))
    [model] = select(discover(tmp_path), ["m:k=v w;echo $(id)"])
    assert model.args == "--a 1 --k 'v w;echo $(id)'"
