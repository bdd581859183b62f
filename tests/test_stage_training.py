"""Stage training end to end: 2 processes = 1 process, SIGKILL + rerun = uninterrupted, TensorBoard, bad input, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from typer.testing import CliRunner

from omni.cli.main import app
from omni.config import load_config
from omni.training.stage import StageConfig, train_stage
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.stage_data import params, stage_data, stage_overrides
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "configs" / "stages" / "audio_pretrain_2.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


def test_two_processes_match_one_process(data, tmp_path):
    """torchrun, gloo: after 4 steps both ranks hold identical weights, equal to a 1-process run of the same
    global batches (data.shards = 2 in both)."""
    overrides = stage_overrides(data, tmp_path, **{"loop.max_steps": 4, "data.shards": 2, "loop.batch_size": 4,
                                                   "optim.warmup_steps": 1})
    helper = ROOT / "tests" / "helpers" / "stage_training.py"
    torchrun = Path(sys.executable).parent / "torchrun"
    runs = {"one": [sys.executable, str(helper)],
            "two": [str(torchrun), "--nproc_per_node", "2", "--standalone", str(helper)]}
    for name, cmd in runs.items():
        proc = subprocess.run([*cmd, str(STAGE), str(tmp_path / name), *overrides], env=ENV, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one = load_file(tmp_path / "one" / "final-rank0.safetensors")
    two = [load_file(tmp_path / "two" / f"final-rank{r}.safetensors") for r in range(2)]
    start = params(__import__("omni.model", fromlist=["OmniModel"]).OmniModel.from_pretrained(data / "model"))
    assert any(not torch.equal(one[k], start[k]) for k in one)  # it trained
    for k, v in one.items():
        assert torch.equal(two[0][k], two[1][k]), k  # the ranks agree bit for bit
        torch.testing.assert_close(two[0][k], v, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "two" / "final" / "omni_config.json").is_file()


def data_log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "data_log" / "rank-0.jsonl").read_text().splitlines()]


def test_sigkill_then_rerun_equals_an_uninterrupted_run(data, tmp_path):
    steps = 40
    common = {"loop.max_steps": steps, "loop.save_every": 5, "loop.keep_checkpoints": 2, "data.log_examples": True,
              "loop.log_every": 5, "optim.warmup_steps": 2,
              "data.dev_sources": [{"name": "asr", "manifests": [str(data / "asr_dev.codes.jsonl")], "task": "asr"}],
              "loop.eval_every": 20}
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = train_stage(load_config(STAGE, StageConfig, overrides=stage_overrides(data, ref_dir, **common)))
    assert ref.result.complete
    expected = params(ref.model)

    cmd = [str(Path(sys.executable).parent / "omni"), "train", "stage", str(STAGE),
           *stage_overrides(data, run_dir, **common)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_ckpt = run_dir / "checkpoints" / "step-00000005" / "trainer_state.json"
    deadline = time.time() + 240
    while not first_ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "final").exists()
    ckpts = sorted((run_dir / "checkpoints").glob("step-????????"))
    resume_step = int(ckpts[-1].name.split("-")[1])
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    assert state["data_position"]["rows_per_shard"] == resume_step * 4 and not state["complete"]

    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"resuming from {ckpts[-1]} (step {resume_step})" in again.stdout
    final = load_file(run_dir / "final" / "model.safetensors")
    for k, v in final.items():
        torch.testing.assert_close(v, expected[k], atol=1e-6, rtol=1e-6)

    # the data position: the rerun trains steps resume_step+1..40 on exactly the examples of the reference run
    reference = {x["step"]: x["ids"] for x in data_log(ref_dir)}
    log = data_log(run_dir)
    pids = list(dict.fromkeys(x["pid"] for x in log))
    assert len(pids) == 2
    killed = [x for x in log if x["pid"] == pids[0]]
    rerun = [x for x in log if x["pid"] == pids[1]]
    assert [x["step"] for x in rerun] == list(range(resume_step + 1, steps + 1))
    assert max(x["step"] for x in killed) >= resume_step
    trained = {x["step"]: x["ids"] for x in killed if x["step"] <= resume_step} | {x["step"]: x["ids"] for x in rerun}
    assert trained == reference  # nothing skipped, nothing repeated
    assert all(reference[x["step"]] == x["ids"] for x in killed)  # steps trained twice saw the same examples


def test_tensorboard_has_losses_per_task_and_modality_rates_and_padding(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dev = [{"name": "asr", "manifests": [str(data / "asr_dev.codes.jsonl")], "task": "asr"},
           {"name": "chat", "manifests": [str(data / "spoken_qa_dev.codes.jsonl")]}]
    cfg = load_config(ROOT / "configs/stages/image_text_pretrain_2.yaml", StageConfig,
                      overrides=stage_overrides(data, tmp_path / "run", **{"data.dev_sources": dev, "loop.max_steps": 2}))
    run = train_stage(cfg)
    events = EventAccumulator(str(next((tmp_path / "run" / "tensorboard").glob("events*"))))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("loss", "loss/text", "loss/audio", "loss/task/asr", "loss/task/tts", "loss/task/spoken_chat",
                "loss/task/image_caption", "loss/task/text", "lr/main/llm", "lr/main/vision_encoder",
                "tokens_per_s", "padding_fraction", "eval/loss", "eval/loss/task/asr", "eval/loss/task/spoken_chat",
                "eval/text_accuracy", "eval/audio_accuracy", "grad_norm/main"):
        assert tag in tags, tag
    lr = {t: events.Scalars(t)[0].value for t in ("lr/main/llm", "lr/main/vision_encoder")}
    assert lr["lr/main/llm"] == pytest.approx(10 * lr["lr/main/vision_encoder"])  # 1e-5 vs 1e-6
    pad = events.Scalars("padding_fraction")[-1].value
    assert 0 <= pad < 0.5
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["sources"]["asr"]["examples"] == 44 and run.final_dir is not None


def test_bad_lines_are_skipped_and_too_many_stop_the_run(data, tmp_path):
    from tests.test_stage_data import write_bad_manifest

    manifest = write_bad_manifest(data, tmp_path / "bad")
    sources = [{"name": "asr", "manifests": [str(manifest)], "task": "asr"}]
    over = stage_overrides(data, tmp_path / "run", **{"data.sources": sources, "data.max_bad_fraction": 0.2})
    run = train_stage(load_config(STAGE, StageConfig, overrides=over))
    assert run.result.complete
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["sources"]["asr"]["skipped"] == 4 and report["sources"]["asr"]["examples"] == 40
    AcceleratorState._reset_state(reset_partial_state=True)
    strict = stage_overrides(data, tmp_path / "strict", **{"data.sources": sources, "data.max_bad_fraction": 0.05})
    res = CliRunner().invoke(app, ["train", "stage", str(STAGE), *strict])
    assert res.exit_code == 2 and "4 of 44 lines" in res.output and "max_bad_fraction" in res.output


def test_cli_errors_name_the_problem(data, tmp_path):
    res = CliRunner().invoke(app, ["train", "stage", str(STAGE),
                                   *stage_overrides(data, tmp_path, init_from=str(tmp_path / "nothing"))])
    assert res.exit_code == 2 and "init_from" in res.output and "run the previous stage first" in res.output
    res = CliRunner().invoke(app, ["train", "stage", str(STAGE), "trainable=[audio_heads]"])
    assert res.exit_code == 2
