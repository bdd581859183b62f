"""Config system: typed loading, file/line/field errors, extends, overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from omni.config import ConfigError, check, from_data, load_config, option, save_config
from omni.config.yaml_io import apply_overrides, read_config_file
from omni.data.synth.config import CorpusConfig


@dataclass
class Optim:
    lr: float = option(1e-3, help="learning rate")
    betas: tuple[float, float] = option((0.9, 0.99), help="Adam betas")

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")


@dataclass
class Toy:
    name: str = option(help="required name")
    layers: int = option(2, help="layer count")
    act: Literal["gelu", "relu"] = option("gelu", help="activation")
    dropout: float | None = option(None, help="dropout")
    groups: list[str] = option(default_factory=list, help="groups")
    lrs: dict[str, float] = option(default_factory=dict, help="per-group lr")
    optim: Optim = option(default_factory=Optim, help="optimizer")
    out: Path = option(Path("runs"), help="output dir")


def load_toy(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> Toy:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    data, origins = read_config_file(path)
    data, origins = apply_overrides(data, origins, overrides)
    return from_data(Toy, data, origins, str(path))


def test_full_load_with_nested_types(tmp_path):
    cfg = load_toy(
        tmp_path,
        "name: a\nlayers: 4\nact: relu\ndropout: 0.1\ngroups: [x, y]\nlrs: {x: 1e-4}\n"
        "optim:\n  lr: 2e-4\n  betas: [0.8, 0.9]\nout: /tmp/o\n",
    )
    assert cfg == Toy("a", 4, "relu", 0.1, ["x", "y"], {"x": 1e-4}, Optim(2e-4, (0.8, 0.9)), Path("/tmp/o"))
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == pytest.approx(2e-4)  # '2e-4' is a float, not a str


@pytest.mark.parametrize(
    "text, field, line, fragment",
    [
        ("name: a\nlayrs: 3\n", "layrs", 2, "did you mean 'layers'"),
        ("name: a\nlayers: three\n", "layers", 2, "expected int, got str 'three'"),
        ("name: a\nlayers: 2.5\n", "layers", 2, "expected int"),
        ("name: a\nact: tanh\n", "act", 2, "expected one of 'gelu', 'relu'"),
        ("name: a\noptim:\n  lr: -1.0\n", "optim.lr", 3, "must be > 0"),
        ("name: a\noptim:\n  betas: [0.9]\n", "optim.betas", 3, "expected a list of 2 items"),
        ("name: a\ngroups: x\n", "groups", 2, "expected a list"),
        ("name: a\nlrs: {x: fast}\n", "lrs.x", 2, "expected float"),
        ("layers: 3\n", "name", None, "required field is missing"),
        ("name: 12\n", "name", 1, "quote it"),
        ("name: a\nlayers: true\n", "layers", 2, "expected int, got bool"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, text, field, line, fragment):
    with pytest.raises(ConfigError) as info:
        load_toy(tmp_path, text)
    err = info.value
    assert err.field == field
    assert err.source.endswith("toy.yaml")
    if line is not None:
        assert err.line == line
    assert fragment in str(err)
    assert "toy.yaml" in str(err) and field in str(err)


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    with pytest.raises(ConfigError, match=r"toy.yaml:\d+: invalid YAML.*flow sequence at line 2"):
        load_toy(tmp_path, "name: a\nlayers: [1, 2\n")
    with pytest.raises(ConfigError, match=r"toy.yaml:2: invalid YAML"):
        load_toy(tmp_path, "name: a\n  layers: 2\n")
    with pytest.raises(ConfigError, match=r"toy.yaml:2: duplicate key 'name'"):
        load_toy(tmp_path, "name: a\nname: b\n")


def test_overrides_apply_and_are_blamed(tmp_path):
    cfg = load_toy(tmp_path, "name: a\n", ("layers=8", "optim.lr=3e-4", "groups=[p, q]", "dropout=null"))
    assert (cfg.layers, cfg.optim.lr, cfg.groups, cfg.dropout) == (8, 3e-4, ["p", "q"], None)
    with pytest.raises(ConfigError) as info:
        load_toy(tmp_path, "name: a\n", ("optim.lr=fast",))
    assert info.value.field == "optim.lr" and "optim.lr=fast" in info.value.source
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load_toy(tmp_path, "name: a\n", ("layers",))
    with pytest.raises(ConfigError, match="unknown field"):
        load_toy(tmp_path, "name: a\n", ("optim.momentum=0.9",))


def test_extends_merges_and_reports_the_right_file(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nlayers: 2\noptim:\n  lr: 1e-3\n  betas: [0.9, 0.95]\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nlayers: 6\noptim:\n  lr: 5e-4\n")
    data, origins = read_config_file(tmp_path / "child.yaml")
    cfg = from_data(Toy, data, origins)
    assert (cfg.name, cfg.layers, cfg.optim.lr, cfg.optim.betas) == ("base", 6, 5e-4, (0.9, 0.95))
    (tmp_path / "bad_child.yaml").write_text("extends: base.yaml\nname: c\n")
    (tmp_path / "base.yaml").write_text("name: base\nlayers: x\n")
    data, origins = read_config_file(tmp_path / "bad_child.yaml")
    with pytest.raises(ConfigError) as info:
        from_data(Toy, data, origins)
    assert info.value.source.endswith("base.yaml") and info.value.line == 2


def test_extends_cycle_and_missing_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        read_config_file(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "nope.yaml")


def test_load_config_kinds(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: corpus\nutterances: 100\n")
    assert load_config(path).utterances == 100
    assert load_config(path, CorpusConfig, overrides=["seed=7"]).seed == 7
    path.write_text("utterances: 100\n")
    with pytest.raises(ConfigError, match="missing top-level 'kind:'"):
        load_config(path)
    path.write_text("kind: nonsense\n")
    with pytest.raises(ConfigError, match="unknown config kind 'nonsense'") as info:
        load_config(path)
    assert info.value.line == 1
    path.write_text("kind: corpus\nsplit_fractions: [0.5, 0.2, 0.2]\n")
    with pytest.raises(ConfigError, match="must sum to 1") as info:
        load_config(path)
    assert info.value.field == "split_fractions" and info.value.line == 2


def test_save_then_load_round_trip(tmp_path):
    cfg = CorpusConfig(seed=3, utterances=123, voices=["espeak:en-us"], rate_range=(0.95, 1.05))
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg


def test_every_field_of_every_kind_has_help():
    from omni.config import KINDS, config_class

    def walk(cls):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            if dataclasses.is_dataclass(f.type) and isinstance(f.type, type):
                walk(f.type)

    for kind in KINDS:
        walk(config_class(kind))


def test_option_requires_help():
    with pytest.raises(ValueError, match="help"):
        option(1, help=" ")
