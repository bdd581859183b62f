"""The linear probe of the vision branch: the probe itself, and `omni eval vision-probe` on a drawn image set."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from omni.cli.main import app
from omni.eval.vision_probe import probe
from tests.helpers.eval_data import eval_bundle
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

runner = CliRunner()


def test_probe_reads_a_linear_answer_and_not_a_random_one():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 20))
    y = np.where(x[:, 3] + 0.5 * x[:, 7] > 0, "yes", "no")  # a linear function of the features
    assert probe(x[:300], y[:300], x[300:], y[300:]) >= 0.9
    noise = rng.choice(["a", "b", "c", "d"], 400)  # unrelated to the features
    assert probe(x[:300], noise[:300], x[300:], noise[300:]) < 0.45


def test_cli_probes_every_question_kind(tmp_path, tmp_path_factory):
    from omni.data.synth.image_set import ImageSetConfig, build_image_set

    build_image_set(ImageSetConfig(train_images=60, dev_images=2, test_images=30, questions_per_image=4), tmp_path / "im")
    out = tmp_path / "probe"
    bundle = eval_bundle(tmp_path_factory)
    res = runner.invoke(app, ["eval", "vision-probe", "--model", str(bundle / "model"), "--train",
                              str(tmp_path / "im" / "image_qa_train.jsonl"), "--test",
                              str(tmp_path / "im" / "image_qa_test.jsonl"), "--out", str(out), "--random"])
    assert res.exit_code == 0, res.output
    kinds = json.loads((out / "report.json").read_text())["kinds"]
    assert {"color", "count", "shape"} <= set(kinds)
    for k, v in kinds.items():
        assert 0.0 <= v["accuracy"] <= 1.0 and 0.0 < v["chance"] <= 1.0 and v["train"] > 0 and v["test"] > 0, k
    assert kinds["color"]["accuracy"] > kinds["color"]["chance"]  # colour is in the pixels, even at random weights
    assert "| color |" in (out / "report.md").read_text()
