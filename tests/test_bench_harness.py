"""The benchmark harness: stable JSON keys, ratios computed from its own measured numbers, goals, report.

No timing assertions: only that the figures written are consistent with each other and with the maths.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from omni.bench import (
    BenchConfig,
    BenchContext,
    Figure,
    Goal,
    run_benchmarks,
    summary,
    write_json,
    write_markdown,
)
from omni.bench.decode import build_model, step_bytes
from omni.cli.main import app
from omni.config.fields import FieldError


def test_figure_ratio_and_goal():
    f = Figure("speed", 30.0, "tok/s", 20.0, "peer", Goal(">=", 1.0))
    assert f.ratio == pytest.approx(1.5) and f.met is True
    t = Figure("time", 2.0, "s", 10.0, "audio s", Goal(">=", 5.0), inverse=True)  # 10 s of audio in 2 s: 5x
    assert t.ratio == pytest.approx(5.0) and t.met is True
    assert Figure("x", 1.4, "s", 1.0, "y", Goal("<=", 1.3)).met is False
    assert Figure("x", 0.0, "s", goal=Goal("<=", 1.3), skipped="no GPU").met is None
    with pytest.raises(ValueError, match="goal op"):
        Goal("==", 1.0)


def test_config_validation():
    with pytest.raises(FieldError, match="device"):
        BenchConfig(device="tpu")
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_benchmarks(["nope"], BenchContext(BenchConfig(quick=True)))


def test_step_bytes_counts_weights_and_kv():
    model = build_model("tiny", "cpu")
    bb, c = model.backbone, model.backbone.config
    emb = bb.get_input_embeddings().weight
    weights = sum(p.numel() for p in bb.parameters()) * 4 - emb.numel() * 4  # untied: one embedding row read
    head_dim = c.hidden_size // c.num_attention_heads
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * 10 * 4
    assert step_bytes(model, 10) == weights + kv


def test_ceilings_cli_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(app, ["bench", "ceilings", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert set(data) == {"command", "created", "machine", "ceilings", "benchmarks", "goals"}
    assert [b["name"] for b in data["benchmarks"]] == ["ceilings"]
    figs = {f["name"]: f for f in data["benchmarks"][0]["figures"]}
    assert set(figs["memory bandwidth (copy)"]) == {"name", "value", "unit", "reference", "reference_name", "ratio",
                                                     "goal", "met", "note", "skipped"}
    assert figs["memory bandwidth (copy)"]["value"] == pytest.approx(data["ceilings"]["bandwidth_gb_s"])
    assert figs["matmul throughput"]["value"] == pytest.approx(data["ceilings"]["matmul_tflops"])
    assert data["ceilings"]["bandwidth_gb_s"] > 0 and data["ceilings"]["matmul_tflops"] > 0
    md = out.with_suffix(".md").read_text()
    assert "## CPU" in md and "| ceilings | memory bandwidth (copy) |" in md


def test_decode_ratios_come_from_the_measured_numbers(tmp_path):
    ctx = BenchContext(BenchConfig(quick=True))
    results = run_benchmarks(["decode"], ctx, log=lambda s: None)
    assert [r.name for r in results] == ["ceilings", "decode"] and not results[1].error, results[1].error
    data = summary(results, ctx, "omni bench decode --quick")
    write_json(data, tmp_path / "b.json")
    figs = {f["name"]: f for f in json.loads((tmp_path / "b.json").read_text())["benchmarks"][1]["figures"]}
    vs_hf = figs["decode tokens/s: omni vs hf generate"]
    assert vs_hf["ratio"] == pytest.approx(vs_hf["value"] / vs_hf["reference"])
    assert vs_hf["met"] == (vs_hf["ratio"] >= 1.0)
    bound = figs["decode tokens/s vs memory-bandwidth bound"]
    model = build_model("tiny", "cpu")
    # the bound is the measured bandwidth over the bytes of a step at the mid-generation context
    per_step = ctx.ceilings.bandwidth / bound["reference"]
    assert step_bytes(model, 0) < per_step < step_bytes(model, 200)
    assert bound["value"] == pytest.approx(vs_hf["value"])
    assert figs["omni static cache + CUDA graphs vs dynamic"]["skipped"]
    assert data["goals"]["met"] + data["goals"]["not_met"] == 3


def test_markdown_keeps_the_other_device_section(tmp_path):
    ctx = BenchContext(BenchConfig(quick=True))
    results = run_benchmarks(["ceilings"], ctx, log=lambda s: None)
    data = summary(results, ctx, "omni bench ceilings")
    md = tmp_path / "bench.md"
    md.write_text("# old\n\n## CUDA\n\nCommand: gpu run\n\n| x |\n\n## Notes\n\nkept by hand\n")
    write_markdown(data, results, md)
    text = md.read_text()
    assert "## CPU" in text and "## CUDA\n\nCommand: gpu run" in text and "## Notes\n\nkept by hand" in text
    write_markdown(data, results, md)  # rewriting replaces the CPU section, never duplicates it
    assert md.read_text().count("## CPU") == 1


def test_cuda_without_gpu_is_skipped(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    results = run_benchmarks(["ceilings"], BenchContext(BenchConfig(device="cuda", quick=True)), log=lambda s: None)
    assert results[0].skipped and not results[0].figures
    assert math.isnan(Figure("x", 1.0, "s", skipped="y").ratio)
