"""`omni serve` / `omni demo` entry points: clear errors before anything loads, the demo's checkpoint hook, config."""

from __future__ import annotations

import subprocess

import pytest
from typer.testing import CliRunner

from omni.cli.main import app
from omni.cli.serve import _config
from omni.config import FieldError
from omni.config.fields import ConfigError
from serve.config import ServeConfig
from serve.demo import ensure_demo_checkpoint


def test_serve_without_a_bundle_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--checkpoint", str(tmp_path / "missing")])
    assert result.exit_code != 0
    assert "checkpoint directory not found (bundles are never downloaded)" in result.output
    assert "Traceback" not in result.output


def test_demo_without_bundle_or_recipe_says_how_to_build_one(tmp_path, monkeypatch):
    import serve.demo

    monkeypatch.setattr(serve.demo, "RECIPE", tmp_path / "no_recipe.yaml")  # never train the real tiny recipe here
    result = CliRunner().invoke(app, ["demo", "--checkpoint", str(tmp_path / "ckpt")])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "omni bundle tiny --out" in text and "omni bundle assemble" in text and "Traceback" not in text


def test_demo_hook_uses_an_existing_bundle_or_runs_the_tiny_recipe(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "bundle.yaml").write_text("kind: bundle\n")
    assert ensure_demo_checkpoint(ckpt, recipe=tmp_path / "none.yaml") == ckpt  # present: used as it is

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("kind: pipeline\n")
    calls: list[list[str]] = []

    def fake_run(cmd, cwd, check):  # the recipe "trains" and leaves a bundle where the demo looks
        calls.append(cmd)
        (tmp_path / "built").mkdir()
        (tmp_path / "built" / "bundle.yaml").write_text("kind: bundle\n")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert ensure_demo_checkpoint(tmp_path / "built", recipe=recipe) == tmp_path / "built"
    assert calls and calls[0][-3:] == ["train", "pipeline", str(recipe)]

    monkeypatch.setattr(subprocess, "run", lambda cmd, cwd, check: subprocess.CompletedProcess(cmd, 1))
    with pytest.raises(RuntimeError, match="the tiny recipe failed"):
        ensure_demo_checkpoint(tmp_path / "other", recipe=recipe)


def test_serve_config_overrides_and_validation(monkeypatch):
    monkeypatch.delenv("OMNI_API_KEY", raising=False)
    cfg = _config(None, ["max_audio_seconds=30", "concurrency=4"], "0.0.0.0", 8000, None)
    assert (cfg.max_audio_seconds, cfg.concurrency, cfg.host, cfg.port, cfg.api_key) == (30, 4, "0.0.0.0", 8000, None)
    assert cfg.speech_switch == "sentence" and cfg.stream_audio  # from configs/serve/default.yaml
    monkeypatch.setenv("OMNI_API_KEY", "k")
    assert _config(None, [], None, None, None).api_key == "k"
    assert _config(None, [], None, None, "cli").api_key == "cli"  # --api-key wins over the environment
    with pytest.raises(ConfigError, match="override 'concurrency=0': field 'concurrency': must be >= 1"):
        _config(None, ["concurrency=0"], None, None, None)
    with pytest.raises(FieldError, match="default_max_tokens"):
        ServeConfig(max_tokens=10, default_max_tokens=20)
    with pytest.raises(FieldError, match="speech_prompt"):
        ServeConfig(speech_prompt="Read this.")
