"""`omni train vocoder`, `omni train flow` and `omni decode` end to end on a tiny generated data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState
from typer.testing import CliRunner

from omni.cli.main import app
from omni.data.codes import write_codes_shard
from omni.data.manifest import CodesRef, ManifestRow, write_manifest
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: tiny models run on one thread)

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "decoder"
SIZES = [256, 128, 128, 64, 64, 64, 64, 64]  # codebooks of configs/decoder/flow_tiny.yaml (the tiny tokenizer's)
runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Six 0.6-1.1 s harmonic 'voices' at 24 kHz with random codes (T = frames / 4) cached in a shard."""
    from omni.config import load_config

    assert load_config(CONFIGS / "flow_tiny.yaml").model.codebook_sizes == SIZES
    root = tmp_path_factory.mktemp("dec_data")
    rng = np.random.default_rng(0)
    rows, codes = [], {}
    for i in range(6):
        n = int(24000 * (0.6 + 0.1 * i))
        t = np.arange(n) / 24000
        f0 = 110 + 20 * i + 10 * np.sin(2 * np.pi * 2 * t)
        wav = sum(0.15 / k * np.sin(2 * np.pi * k * np.cumsum(f0) / 24000) for k in range(1, 6))
        wav = (wav * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.003 * rng.standard_normal(n)).astype(np.float32)
        sf.write(root / f"u{i}.wav", wav, 24000)
        key = f"u{i}"
        codes[key] = torch.from_numpy(rng.integers(0, SIZES, (n // 480 // 4, 8)))
        rows.append(ManifestRow(id=key, task="tts", text=f"utterance {i}", audio=f"u{i}.wav", speaker="flite:rms",
                                codes=CodesRef("codes/shard-00000.safetensors", key)))
    write_codes_shard(root / "codes" / "shard-00000.safetensors", codes)
    write_manifest(root / "train.jsonl", rows[:4])
    write_manifest(root / "dev.jsonl", rows[4:])
    write_manifest(root / "nocodes.jsonl", [ManifestRow(id="x", task="tts", text="x", audio="u0.wav")])
    np.save(root / "codes.npy", codes["u5"].numpy())
    np.save(root / "bad_codes.npy", np.full((5, 8), 300))
    return root


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_train_vocoder_logs_samples_and_does_not_retrain_a_finished_run(data, tmp_path):
    run = tmp_path / "voc"
    args = ["train", "vocoder", CONFIGS / "vocoder_tiny.yaml", f"loop.output_dir={run}",
            f"train_manifests=[{data / 'train.jsonl'}]", f"dev_manifest={data / 'dev.jsonl'}", "loop.max_steps=4",
            "loop.batch_size=2", "loop.eval_every=2", "loop.save_every=2", "loop.log_every=2", "segment_frames=8",
            "loop.progress=false", "adversarial_start=1"]  # the GAN losses from step 2, so they are logged
    code, out = invoke(*args)
    assert code == 0, out
    assert "finished at step 4" in out and "eval/mel_l1=" in out
    assert (run / "model" / "model.safetensors").is_file() and (run / "model" / "config.json").is_file()
    assert {p.name for p in (run / "samples").iterdir()} >= {"vocoder-step00000002.wav", "vocoder-step00000004.png"}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run / "tensorboard").rglob("events*"))), size_guidance={"images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    assert "dev/mel" in tags["images"] and "dev/audio" in tags["audio"]
    assert {"loss/generator", "loss/discriminator", "mel_l1", "fm", "adv_g", "d_real", "eval/mel_l1"} <= set(tags["scalars"])
    AcceleratorState._reset_state(reset_partial_state=True)
    code, out = invoke(*args)  # same command again: nothing left to train
    assert code == 0 and "finished at step 4" in out


def test_vocoder_mel_warm_up_leaves_the_discriminator_alone_then_starts_it(data, tmp_path):
    """adversarial_start=3: steps 1-3 train the generator on the mel (+ STFT) loss alone, the discriminator's
    weights and optimizer untouched; from step 4 both phases run."""
    from safetensors.torch import load_file

    from decoders.train_vocoder import VocoderTask

    task = VocoderTask(adversarial_start=3)
    assert [task.phases_at(s) for s in (0, 2, 3)] == [("generator",), ("generator",), ("generator", "discriminator")]
    run = tmp_path / "voc"
    args = ["train", "vocoder", CONFIGS / "vocoder_tiny.yaml", f"loop.output_dir={run}",
            f"train_manifests=[{data / 'train.jsonl'}]", "dev_manifest=null", "loop.batch_size=2", "loop.log_every=1",
            "segment_frames=8",
            "loop.progress=false", "adversarial_start=3", "model.lambda_stft=1.0", "loop.save_every=3"]

    def weights(step: int) -> dict:
        ckpt = run / "checkpoints" / f"step-{step:08d}"
        return load_file(str(next(ckpt.rglob("model.safetensors"))))

    code, out = invoke(*args, "loop.max_steps=6")
    assert code == 0, out
    torch.manual_seed(0)
    from decoders.train_vocoder import VocoderGAN
    from omni.config import load_config

    cfg = load_config(CONFIGS / "vocoder_tiny.yaml", overrides=[f"train_manifests=[{data / 'train.jsonl'}]",
                                                                 "dev_manifest=null", "loop.output_dir=/unused"])
    initial = {k: v for k, v in VocoderGAN(cfg.model).state_dict().items() if k.startswith("discriminator.")}
    after3 = weights(3)
    for k, v in initial.items():  # the discriminator is where its seeded initialisation put it
        assert torch.equal(after3[k], v), k
    assert any(not torch.equal(after3[k], v) for k, v in VocoderGAN(cfg.model).state_dict().items()
               if k.startswith("vocoder.") and v.is_floating_point())
    after6 = weights(6)
    assert any(not torch.equal(after6[k], v) for k, v in after3.items() if k.startswith("discriminator."))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in ("stft", "loss/discriminator")}
    assert steps["stft"] == [1, 2, 3, 4, 5, 6] and steps["loss/discriminator"] == [4, 5, 6]


def test_vocoder_data_keep_their_own_front_end_on_the_cpu(data):
    """The data sets must not share the model's mel front end: accelerate moves the model (and its buffers) to the
    GPU, where DataLoader worker processes cannot follow ("CUDA error: initialization error" on an H200 with
    loop.num_workers=8). Moving the model to the meta device stands in for the GPU here."""
    from decoders.train_vocoder import VocoderGAN, vocoder_data
    from omni.config import load_config

    cfg = load_config(CONFIGS / "vocoder_tiny.yaml", overrides=[f"train_manifests=[{data / 'train.jsonl'}]",
                                                                 f"dev_manifest={data / 'dev.jsonl'}",
                                                                 "loop.output_dir=/unused", "segment_frames=8"])
    model = VocoderGAN(cfg.model)
    train, dev = vocoder_data(cfg)
    model.to("meta")
    wav, mel = train[0]
    assert mel.device.type == "cpu" and mel.shape == (80, 8) and torch.isfinite(mel).all()
    assert dev[0][1].device.type == "cpu"


def test_train_flow_then_decode_whole_and_streamed(data, tmp_path):
    run = tmp_path / "flow"
    code, out = invoke("train", "flow", CONFIGS / "flow_tiny.yaml", f"loop.output_dir={run}",
                       f"train_manifests=[{data / 'train.jsonl'}]", f"dev_manifest={data / 'dev.jsonl'}",
                       "loop.max_steps=3", "loop.batch_size=2", "loop.log_every=1", "loop.progress=false",
                       "eval_examples=1", "eval_steps=2", "model.estimator.channels=32", "model.token_dim=32",
                       "model.estimator.n_mid_blocks=1")
    assert code == 0, out
    assert "finished at step 3" in out and "eval/cfm=" in out
    assert {p.suffix for p in (run / "samples").iterdir()} == {".wav", ".png"}
    from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig

    HiFiGANVocoder(VocoderConfig(generator=GeneratorConfig(channels=16, resblock_kernel_sizes=[3],
                                                           resblock_dilations=[[1]]))).save_pretrained(tmp_path / "voc")
    models = ["--flow", run / "model", "--vocoder", tmp_path / "voc", "--steps", "2"]
    code, out = invoke("decode", data / "codes.npy", "--out", tmp_path / "whole.wav", "--mel-plot",
                       tmp_path / "whole.png", "--reference", data / "u5.wav", *models)
    assert code == 0, out
    n_codes = len(np.load(data / "codes.npy"))
    whole, sr = sf.read(tmp_path / "whole.wav")
    assert sr == 24000 and len(whole) == n_codes * 1920 and (tmp_path / "whole.png").is_file()
    code, out = invoke("decode", data / "codes.npy", "--out", tmp_path / "stream.wav", "--stream", *models)
    assert code == 0 and "first chunk after" in out, out
    assert len(sf.read(tmp_path / "stream.wav")[0]) == len(whole)
    # bad input: out-of-range codes, a missing model directory
    code, out = invoke("decode", data / "bad_codes.npy", "--out", tmp_path / "x.wav", *models)
    assert code == 2 and "error:" in out and "code 300 at frame 0, codebook 0 is out of range [0, 256)" in out
    code, out = invoke("decode", data / "codes.npy", "--out", tmp_path / "x.wav", "--flow", tmp_path / "nope",
                       "--vocoder", tmp_path / "voc")
    assert code == 2 and "model directory not found" in out


def test_train_flow_needs_cached_codes(data, tmp_path):
    code, out = invoke("train", "flow", CONFIGS / "flow_tiny.yaml", f"loop.output_dir={tmp_path / 'f'}",
                       f"train_manifests=[{data / 'nocodes.jsonl'}]", "dev_manifest=null")
    assert code == 2
    assert "row 'x' has audio but no 'codes'" in out and "omni data tokenize" in out
