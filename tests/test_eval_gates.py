"""Component quality gates: greedy CTC from the codes, the CTC head saved with the tokenizer, Griffin-Lim,
the vocoder's copy-synthesis gate (a random vocoder fails it, Griffin-Lim passes) and resynthesis from
saved components."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audio_tokenizer.ctc import CTC_DIR, CodesTranscriber, CTCHead, greedy_ctc, save_ctc_head
from omni.cli.main import app
from tests.helpers.eval_data import corpus_rows, write_jsonl
from tests.helpers.speech_data import initialised_tokenizer
from tests.helpers.speech_fixtures import lm_dir  # noqa: F401 (fixture)
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

runner = CliRunner()


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    blank = 3
    path = [[1, 1, 3, 1, 2, 2, 3, 3], [0, 3, 0, 0, 2, 2, 2, 2]]  # second clip: 5 valid frames
    logits = torch.nn.functional.one_hot(torch.tensor(path), 4).float()  # (2, 8, 4)
    assert greedy_ctc(logits, torch.tensor([8, 5]), blank) == [[1, 1, 2], [0, 0, 2]]
    assert greedy_ctc(logits[:1], torch.tensor([0]), blank) == [[]]


def test_ctc_head_saved_with_the_tokenizer_transcribes_the_codes(tmp_path, lm_dir):
    from omni.text.tokenizer import load_tokenizer

    text_tok = load_tokenizer(lm_dir)
    tok = initialised_tokenizer()
    torch.manual_seed(1)
    head = CTCHead(16, len(text_tok), hidden=8)
    with torch.no_grad():  # make the head spell: bias the classes so that the greedy path is not all blanks
        head.out.bias.copy_(torch.randn_like(head.out.bias) * 3)
    tok.save_pretrained(tmp_path / "tok", extra=lambda d: save_ctc_head(d / CTC_DIR, head, text_tok))
    assert (tmp_path / "tok" / CTC_DIR / "checksums.json").is_file()

    loaded = CodesTranscriber.from_pretrained(tmp_path / "tok")
    g = torch.Generator().manual_seed(0)
    wavs = [0.1 * torch.randn(n, generator=g).numpy() for n in (16000, 9000)]
    codes = tok.encode_many(wavs, 16000)
    texts = loaded.transcribe(wavs, 16000)
    for c, text in zip(codes, texts):  # the codes alone, through the same head, by hand
        q = tok.quantizer.decode_codes(c[None])  # (1, T, 16)
        ids = greedy_ctc(head(q), torch.tensor([len(c)]), head.blank)[0]
        assert ids and text == text_tok.decode(ids, skip_special_tokens=True).strip()

    tok.save_pretrained(tmp_path / "plain")  # no head: a clear error naming what is missing
    with pytest.raises(FileNotFoundError, match="CTC head"):
        CodesTranscriber.from_pretrained(tmp_path / "plain")


def test_codes_ctc_recognizer_scores_an_asr_manifest(tmp_path, tmp_path_factory, lm_dir):
    from omni.text.tokenizer import load_tokenizer

    text_tok = load_tokenizer(lm_dir)
    tok = initialised_tokenizer()
    tok.save_pretrained(tmp_path / "tok", extra=lambda d: save_ctc_head(d / CTC_DIR, CTCHead(16, len(text_tok), 8),
                                                                        text_tok))
    manifest = write_jsonl(tmp_path / "asr.jsonl", corpus_rows(tmp_path_factory, "asr_train.jsonl", 3))
    out = tmp_path / "rep"
    res = runner.invoke(app, ["eval", "asr", str(manifest), "--recognizer", "codes-ctc", "--model-dir",
                              str(tmp_path / "tok"), "--out", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["system"].startswith("codes-ctc:") and report["totals"]["scored"] == 3
    assert report["totals"]["wer"] >= 0.9  # an untrained head spells nothing useful


def test_griffin_lim_inverts_a_mel(tmp_path_factory):
    """A clip's mel, inverted by Griffin-Lim, has nearly the same mel again; a random waveform does not."""
    from decoders.griffin_lim import GriffinLimVocoder
    from decoders.mel import MelConfig, MelFrontEnd
    from omni.audio.io import load_audio

    row = corpus_rows(tmp_path_factory, "tts_train.jsonl", 1)[0]
    wav = torch.from_numpy(load_audio(row["audio"], 24000).samples)
    fe = MelFrontEnd(MelConfig())
    mel = fe(wav)  # (1, 80, F)
    y = GriffinLimVocoder(n_iter=16)(mel)
    assert y.shape == (1, mel.shape[-1] * 480)
    err = (fe(y) - mel).abs().mean()
    noise = (fe(0.1 * torch.randn_like(y)) - mel).abs().mean()
    assert float(err) < 0.35 * float(noise)


@pytest.mark.flite
@pytest.mark.slow
def test_vocoder_gate_fails_a_random_vocoder_and_passes_griffin_lim(tmp_path, tmp_path_factory):
    """The copy-synthesis gate: PocketSphinx on copies of the reply voice's clips vs on the clips themselves.
    A HiFi-GAN with random weights must fail it (--max-wer-ratio exits 1); Griffin-Lim must pass."""
    from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig

    rows = [r for r in corpus_rows(tmp_path_factory, "tts_train.jsonl", 40) if r["speaker"] == "flite:rms"][:8]
    manifest = write_jsonl(tmp_path / "tts.jsonl", rows)
    torch.manual_seed(0)
    HiFiGANVocoder(VocoderConfig(generator=GeneratorConfig(channels=32, resblock_kernel_sizes=[3],
                                                           resblock_dilations=[[1]]))).save_pretrained(tmp_path / "voc")
    ratios = {}
    for name, vocoder in (("random", str(tmp_path / "voc")), ("griffin-lim", "griffin-lim")):
        out = tmp_path / name
        res = runner.invoke(app, ["eval", "vocoder", str(manifest), "--vocoder", vocoder, "--out", str(out),
                                  "--no-plots", "--max-wer-ratio", "1.5", "samples=1"])
        report = json.loads((out / "report.json").read_text())
        ratios[name] = report["wer_ratio"]
        assert report["task"] == "vocoder" and report["references"]["scored"] == len(rows)
        assert (res.exit_code == 1) == (ratios[name] > 1.5), res.output
    assert ratios["random"] > 3.0 and ratios["griffin-lim"] <= 1.5, ratios
    sample = next((tmp_path / "griffin-lim" / "samples").glob("*.wav"))
    assert sample.stat().st_size > 1000


def test_resynthesis_from_saved_components(tmp_path, tmp_path_factory):
    """``omni eval tokenizer --tokenizer --flow --vocoder``: the same figures as through a bundle of them."""
    from omni.bundle import load_bundle
    from tests.helpers.eval_data import eval_bundle

    bundle_dir = eval_bundle(tmp_path_factory)
    parts = {k: str(bundle_dir / v) for k, v in (("tokenizer", "audio_tokenizer"), ("flow", "flow"),
                                                  ("vocoder", "vocoder"))}
    assert all((tmp_path / p).exists() or True for p in parts.values())
    bundle = load_bundle(bundle_dir)
    manifest = write_jsonl(tmp_path / "asr.jsonl", corpus_rows(tmp_path_factory, "asr_train.jsonl", 2))
    reports = {}
    for name, args in (("bundle", ["--checkpoint", str(bundle_dir)]),
                       ("parts", [f"--{k}={v}" for k, v in parts.items()])):
        res = runner.invoke(app, ["eval", "tokenizer", str(manifest), *args, "--out", str(tmp_path / name),
                                  "--no-plots", "samples=0", "--voice", bundle.voices[0]])
        assert res.exit_code == 0, res.output
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    a, b = reports["bundle"], reports["parts"]
    assert a["totals"]["scored"] == b["totals"]["scored"] == 2
    assert np.isclose(a["mcd"]["mean"], b["mcd"]["mean"], rtol=1e-4)
    res = runner.invoke(app, ["eval", "tokenizer", str(manifest), "--tokenizer", parts["tokenizer"],
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--flow" in res.output
