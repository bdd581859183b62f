"""Every YAML file under configs/ loads and validates against its kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni.config import KINDS, load_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS, "no YAML files found under configs/"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_file_loads(path):
    cfg = load_config(path)
    assert type(cfg).__name__ in {v.rsplit(":", 1)[1] for v in KINDS.values()}


def test_smoke_corpus_extends_default():
    root = CONFIGS[0].parents[1]
    default = load_config(root / "data" / "synth.yaml")
    smoke = load_config(root / "data" / "synth_smoke.yaml")
    assert smoke.utterances == 120 and smoke.tts_voices == default.tts_voices
