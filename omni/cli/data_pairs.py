"""`omni data make-pairs` (preference pairs from sampled SFT answers) and `omni data answer-rate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from omni.cli.common import user_errors


def _load(model_dir: Path, manifest: Path, max_rows: int):
    from omni.data.manifest import load_manifest
    from omni.data.media import CachedMedia
    from omni.model import OmniModel

    model = OmniModel.from_pretrained(model_dir).eval()
    rows = load_manifest(manifest)[: max_rows or None]
    vision = model.cfg.vision if model.vision is not None else None
    return model, rows, CachedMedia(list(model.cfg.codebook_sizes), vision)


@user_errors
def make_pairs_cmd(
    manifest: Path = typer.Argument(..., help="Prompts: spoken_qa / text conversations or preference rows with "
                                              "meta.answer_key (code-cached when the prompts are spoken)."),
    model: Path = typer.Option(..., "--model", help="The SFT model directory (save_pretrained)."),
    out: Path = typer.Option(..., "--out", help="Preference manifest to write (JSONL)."),
    candidates: int = typer.Option(4, help="Answers sampled per prompt."),
    temperature: float = typer.Option(1.0, help="Sampling temperature."),
    seed: int = typer.Option(0, help="Sampling seed."),
    speech: bool = typer.Option(False, "--speech/--no-speech", help="Let the model answer in speech too and score the "
                                                                    "ASR round trip (needs --checkpoint)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Bundle whose speech decoder renders spoken "
                                                                      "answers for the round trip (with --speech)."),
    voice: str | None = typer.Option(None, "--voice", help="Decoder voice (default: the bundle's first)."),
    judge: str = typer.Option("pocketsphinx", "--judge", help="Round-trip recogniser: pocketsphinx, whisper, espnet."),
    judge_model_dir: Path | None = typer.Option(None, "--judge-model-dir", help="Local model directory of a "
                                                                                "whisper / espnet judge."),
    speech_in: bool = typer.Option(True, "--speech-in/--text-in", help="Prompts heard as speech or read as text."),
    max_rows: int = typer.Option(0, help="Use at most this many prompts (0: all)."),
    min_gap: float = typer.Option(0.5, help="Keep a prompt only when best and worst scores differ by this much."),
) -> None:
    """Sample N answers per prompt from the SFT model, score them (answer correctness, ASR-round-trip WER of
    spoken answers, length) and write best vs worst as chosen / rejected preference rows.
    """
    from omni.align.pairs import ScoreWeights, bundle_synthesizer, make_pairs, write_rows

    synthesize = recognizer = None
    if speech:
        from omni.eval.recognizers.base import RecognizerConfig, build_recognizer

        if checkpoint is None:
            raise typer.BadParameter("--speech needs --checkpoint BUNDLE: its speech decoder renders the spoken "
                                     "answers for the ASR round trip")
        synthesize = bundle_synthesizer(str(checkpoint), voice)
        recognizer = build_recognizer(RecognizerConfig(name=judge, model_dir=str(judge_model_dir) if judge_model_dir
                                                       else None), None)
    m, rows, media = _load(model, manifest, max_rows)
    pairs = make_pairs(m, rows, str(manifest), media, candidates, temperature, seed, ScoreWeights(min_gap=min_gap),
                       speech=speech, speech_in=speech_in, synthesize=synthesize, recognizer=recognizer,
                       log=typer.echo)
    write_rows(pairs, str(out))
    typer.echo(f"wrote {len(pairs)} pairs to {out}")


@user_errors
def answer_rate_cmd(
    manifest: Path = typer.Argument(..., help="Preference rows with meta.answer_key (e.g. preference_dev.jsonl)."),
    model: Path = typer.Option(..., "--model", help="Model directory."),
    samples: int = typer.Option(4, help="Answers sampled per prompt."),
    temperature: float = typer.Option(1.0, help="Sampling temperature."),
    seed: int = typer.Option(0, help="Sampling seed (the same seed gives the same draws for the same model)."),
    speech_in: bool = typer.Option(False, "--speech-in/--text-in", help="Prompts heard as speech or read as text."),
    max_rows: int = typer.Option(0, help="Use at most this many prompts (0: all)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rates and example answers here."),
) -> None:
    """Chosen-style rate: the share of sampled answers that hold the right answer key vs the rejected (wrong) answer."""
    from dataclasses import asdict

    from omni.align.pairs import answer_rates

    m, rows, media = _load(model, manifest, max_rows)
    rates = answer_rates(m, rows, str(manifest), media, samples, temperature, seed, speech_in)
    typer.echo(f"{rates.answers} answers: right {rates.right:.3f}, wrong {rates.wrong:.3f}, neither {rates.neither:.3f}")
    if json_out is not None:
        json_out.write_text(json.dumps(asdict(rates), indent=2) + "\n")
