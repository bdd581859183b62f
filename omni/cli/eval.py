"""`omni eval ...`: batch ASR / TTS evaluation, answer accuracy (QA), the component gates (vocoder, tokenizer),
report comparison.

Each command runs on one process, or data-parallel under ``torchrun --nproc_per_node N $(which omni) eval ...``
(or ``accelerate launch``): every rank evaluates its share of the batches, rank 0 writes the reports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from omni.cli.common import user_errors

app = typer.Typer(help="Evaluate ASR, TTS, answer accuracy and the audio tokenizer on manifests; compare reports.",
                  no_args_is_help=True)

_OVERRIDES = typer.Argument(None, help="Dotted config overrides, e.g. data.batch_size=4 normalizer=basic.")
_CONFIG = typer.Option(None, "--config", help="Evaluation YAML (kind eval_asr / eval_tts / eval_qa / eval_tokenizer / eval_vocoder).")
_OUT = typer.Option(..., "--out", help="Directory for results.jsonl, report.json, report.md, figures/ (and samples/).")
_BATCH = typer.Option(None, "--batch-size", help="Utterances per batch.")
_LIMIT = typer.Option(None, "--limit", help="Only the first N rows.")
_DEVICE = typer.Option(None, "--device", help="cpu / cuda (default: the config's).")
_PLOTS = typer.Option(True, "--plots/--no-plots", help="Write the PNG figures.")
_JUDGE = typer.Option(None, "--judge", help="pocketsphinx (default), whisper, espnet or omni.")
_JUDGE_DIR = typer.Option(None, "--judge-model-dir", help="Local model directory of a whisper / espnet judge.")
_MAX_RATIO = typer.Option(None, "--max-wer-ratio", help="Gate: exit 1 when the judge's WER on the generated speech over "
                          "its WER on the references is above this (e.g. 1.2 for a vocoder).")


def _load(cls: type, config: Path | None, overrides: list[str] | None) -> Any:
    from omni.config import from_data, load_config
    from omni.config.yaml_io import apply_overrides

    if config is not None:
        return load_config(config, cls, overrides=overrides or [])
    data, origins = apply_overrides({}, {}, overrides or [])
    return from_data(cls, data, origins, "command line")


def _set(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with the options actually given (None = not given); validation reruns."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _bundle(checkpoint: Path | None, device: str, needed: bool) -> Any:
    if checkpoint is None:
        if needed:
            raise ValueError("--checkpoint DIR (a bundle directory) is required for this evaluation")
        return None
    from omni.bundle import load_bundle

    return load_bundle(checkpoint, device=device)


def _round(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _finish(task: str, run: Any, cfg: Any, manifest: Path, system: str, out: Path, group_by: str,
            checkpoint: Path | None, judge: str | None, extra: dict | None, plots: bool,
            gate: tuple[str, float] | None = None) -> None:
    """Write the report and print its headline; ``gate = (key, most)``: exit 1 when the report's ``wer`` or
    ``wer_ratio`` is above ``most`` (or was not measured)."""
    from omni.eval.report import finish_run

    report, files = finish_run(task, run, cfg, manifest, system, out, group_by, checkpoint=checkpoint, judge=judge,
                               extra=extra, plots=plots)
    t = report["totals"]
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    line = (f"{task} [{system}{', judge ' + judge if judge else ''}]: WER {pct(t['wer'])}, CER {pct(t['cer'])} "
            f"over {t['scored']} utterances ({t['failed']} failed); RTF {t['rtf'] if t['rtf'] is None else round(t['rtf'], 4)}")
    if "references" in report and report["references"]:
        line += f"; judge WER on references {pct(report['references']['wer'])}, WER ratio {_round(report['wer_ratio'])}"
    typer.echo(line)
    typer.echo(f"report: {files.markdown} ({files.json}, {files.results})")
    if gate is not None and gate[1] is not None:
        key, most = gate
        _gate(key, t["wer"] if key == "wer" else report.get(key), most, upper=True)


def _gate(key: str, value: float | None, bound: float, upper: bool) -> None:
    """Exit 1 when ``value`` is past ``bound`` (above it when ``upper``, else below it) or was not measured."""
    failed = value is None or (value > bound if upper else value < bound)
    ok_op, bad_op = ("<=", ">") if upper else (">=", "<")
    if failed:
        typer.secho(f"gate failed: {key} {_round(value)} {bad_op} {bound:g}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"gate passed: {key} {_round(value)} {ok_op} {bound:g}")


@app.command("asr")
@user_errors
def asr_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest with audio and transcripts (e.g. asr_test.jsonl)."),
    overrides: list[str] = _OVERRIDES,
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Bundle directory (needed by --recognizer omni)."),
    recognizer: str = typer.Option(None, "--recognizer", help="omni (default), pocketsphinx, whisper, espnet or codes-ctc."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Local model directory of a whisper / espnet recogniser, or the saved audio tokenizer of codes-ctc."),
    out: Path = _OUT,
    config: Path = _CONFIG,
    batch_size: int = _BATCH,
    limit: int = _LIMIT,
    device: str = _DEVICE,
    plots: bool = _PLOTS,
    max_wer: float = typer.Option(None, "--max-wer", help="Gate: exit 1 when the WER is above this (e.g. 0.15)."),
) -> None:
    """Recognise a manifest's speech and score it: WER/CER (normalised), per speaker / language / duration, RTF.

    With ``--recognizer codes-ctc --model-dir <saved tokenizer>`` it is the codes' phonetic-content gate."""
    from omni.eval.asr import AsrEvalConfig, evaluate_asr
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer

    cfg = _load(AsrEvalConfig, config, overrides)
    cfg = _set(cfg, recognizer=_set(cfg.recognizer, name=recognizer, device=device,
                                    model_dir=str(model_dir) if model_dir else None),
               data=_set(cfg.data, batch_size=batch_size, limit=limit))
    ctx = dist_context(cfg.recognizer.device)
    cfg = _set(cfg, recognizer=_set(cfg.recognizer, device=ctx.device))
    bundle = _bundle(checkpoint, ctx.device, needed=cfg.recognizer.name == "omni")
    rec = build_recognizer(cfg.recognizer, bundle)
    run = evaluate_asr(cfg, manifest, rec, ctx)
    if ctx.is_main:
        _finish("asr", run, cfg, manifest, rec.name, out, "speaker", checkpoint if cfg.recognizer.name == "omni" else None,
                None, None, plots, ("wer", max_wer))


def _speech_cmd(task: str, manifest: Path, overrides: list[str] | None, checkpoint: Path | None, judge: str | None,
                judge_model_dir: Path | None, voice: list[str] | None, out: Path, config: Path | None,
                batch_size: int | None, limit: int | None, device: str | None, plots: bool,
                components: dict[str, Path | None] | None = None, max_wer_ratio: float | None = None) -> None:
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer
    from omni.eval.speech import speech_report_extra

    if task == "tts":
        from omni.eval.tts import TtsEvalConfig as Cfg
    elif task == "tokenizer":
        from omni.eval.tokenizer_eval import TokenizerEvalConfig as Cfg
    else:
        from omni.eval.vocoder_eval import VocoderEvalConfig as Cfg
    cfg = _load(Cfg, config, overrides)
    cfg = _set(cfg, judge=_set(cfg.judge, name=judge, device=device,
                               model_dir=str(judge_model_dir) if judge_model_dir else None),
               data=_set(cfg.data, batch_size=batch_size, limit=limit), voices=list(voice) if voice else None)
    ctx = dist_context(cfg.judge.device)
    cfg = _set(cfg, judge=_set(cfg.judge, device=ctx.device))
    given = {k: v for k, v in (components or {}).items() if v is not None}
    bundle = _bundle(checkpoint, ctx.device, needed=task == "tts" or (task == "tokenizer" and not given)
                     or cfg.judge.name == "omni")
    rec = build_recognizer(cfg.judge, bundle)
    if task == "tts":
        from omni.eval.tts import evaluate_tts

        run, system = evaluate_tts(cfg, manifest, bundle, rec, ctx, out_dir=out), "omni"
    elif task == "tokenizer":
        from omni.eval.tokenizer_eval import (
            bundle_resynthesis,
            component_resynthesis,
            evaluate_tokenizer,
        )

        if given and len(given) < 3:
            raise ValueError("resynthesis from saved components needs all of --tokenizer, --flow and --vocoder "
                             f"(got {', '.join('--' + k for k in given)})")
        parts = (component_resynthesis(given["tokenizer"], given["flow"], given["vocoder"], cfg.voices, ctx.device)
                 if given else bundle_resynthesis(bundle, cfg.voices))
        run, system = evaluate_tokenizer(cfg, manifest, parts, rec, ctx, out_dir=out), "tokenizer+decoder"
    else:
        from omni.eval.vocoder_eval import CopySynthesis, evaluate_vocoder

        copy = CopySynthesis(str(given["vocoder"]), cfg.griffin_lim_iters, ctx.device)
        run, system = evaluate_vocoder(cfg, manifest, copy, rec, ctx, out_dir=out), copy.name
    if ctx.is_main:
        _finish(task, run, cfg, manifest, system, out, "voice", checkpoint, rec.name, speech_report_extra(run), plots,
                ("wer_ratio", max_wer_ratio))


@app.command("tts")
@user_errors
def tts_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest of texts to speak (tts rows; reference audio optional)."),
    overrides: list[str] = _OVERRIDES,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Bundle directory."),
    judge: str = _JUDGE,
    judge_model_dir: Path = _JUDGE_DIR,
    voice: list[str] = typer.Option(None, "--voice", help="Voice to synthesise with (repeat for several; default: the bundle's first)."),
    out: Path = _OUT,
    config: Path = _CONFIG,
    batch_size: int = _BATCH,
    limit: int = _LIMIT,
    device: str = _DEVICE,
    plots: bool = _PLOTS,
    max_wer_ratio: float = _MAX_RATIO,
) -> None:
    """Synthesise each text, judge it with an independent recogniser, compare with the references (WER gap, MCD)."""
    _speech_cmd("tts", manifest, overrides, checkpoint, judge, judge_model_dir, voice, out, config, batch_size, limit,
                device, plots, max_wer_ratio)


@app.command("qa")
@user_errors
def qa_cmd(
    manifest: Path = typer.Argument(..., help="Question manifest with meta.answer_key: spoken_qa_test.codes.jsonl "
                                    "(heard), text_test.jsonl or image_qa_test.jsonl (read, with --text-in)."),
    overrides: list[str] = _OVERRIDES,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Bundle directory, or a saved omni model directory."),
    out: Path = _OUT,
    config: Path = _CONFIG,
    speech_in: bool = typer.Option(None, "--speech-in/--text-in", help="Hear each question (its audio codes) or read "
                                   "its text (default: the config's, speech)."),
    batch_size: int = _BATCH,
    limit: int = _LIMIT,
    group_by: str = typer.Option(None, "--group-by", help="meta field whose values split the accuracy table "
                                 "(question_kind, category)."),
    min_accuracy: float = typer.Option(None, "--min-accuracy", help="Gate: exit 1 when the accuracy is below this "
                                       "(e.g. 0.95 for the text LM)."),
) -> None:
    """Answer accuracy: greedy text replies scored against each row's meta.answer_key, per question kind."""
    from omni.eval.qa import QaEvalConfig, evaluate_qa

    cfg = _set(_load(QaEvalConfig, config, overrides), speech_in=speech_in, batch_size=batch_size, max_rows=limit,
               group_by=group_by)
    report = evaluate_qa(cfg, manifest, checkpoint, out)
    t = report["totals"]
    typer.echo(f"qa [{'speech' if cfg.speech_in else 'text'} in]: accuracy {100 * t['accuracy']:.1f}% "
               f"({t['correct']} / {t['scored']}; {t['unscored']} rows without an answer key)")
    for group, g in report["by_group"].items():
        typer.echo(f"  {group:<16} {100 * g['accuracy']:5.1f}%  ({g['correct']} / {g['scored']})")
    typer.echo(f"report: {out / 'report.md'} ({out / 'report.json'}, {out / 'results.jsonl'})")
    if min_accuracy is not None:
        _gate("accuracy", t["accuracy"], min_accuracy, upper=False)


@app.command("tokenizer")
@user_errors
def tokenizer_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest with audio and transcripts."),
    overrides: list[str] = _OVERRIDES,
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Bundle directory (its audio tokenizer and speech decoder)."),
    tokenizer: Path = typer.Option(None, "--tokenizer", help="Saved audio tokenizer (instead of --checkpoint; with --flow, --vocoder)."),
    flow: Path = typer.Option(None, "--flow", help="Saved flow decoder (instead of --checkpoint)."),
    vocoder: Path = typer.Option(None, "--vocoder", help="Saved vocoder (instead of --checkpoint)."),
    judge: str = _JUDGE,
    judge_model_dir: Path = _JUDGE_DIR,
    voice: list[str] = typer.Option(None, "--voice", help="Decoder voice (repeat for several; default: the first)."),
    out: Path = _OUT,
    config: Path = _CONFIG,
    batch_size: int = _BATCH,
    limit: int = _LIMIT,
    device: str = _DEVICE,
    plots: bool = _PLOTS,
    max_wer_ratio: float = _MAX_RATIO,
) -> None:
    """Resynthesis gate: audio -> codes -> flow decoder -> vocoder, judged against the original (WER ratio, MCD)."""
    _speech_cmd("tokenizer", manifest, overrides, checkpoint, judge, judge_model_dir, voice, out, config, batch_size,
                limit, device, plots, {"tokenizer": tokenizer, "flow": flow, "vocoder": vocoder}, max_wer_ratio)


@app.command("vocoder")
@user_errors
def vocoder_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest with audio and transcripts (e.g. tts_test.jsonl)."),
    overrides: list[str] = _OVERRIDES,
    vocoder: str = typer.Option(..., "--vocoder", help="Saved vocoder directory, or 'griffin-lim' (the baseline)."),
    judge: str = _JUDGE,
    judge_model_dir: Path = _JUDGE_DIR,
    out: Path = _OUT,
    config: Path = _CONFIG,
    batch_size: int = _BATCH,
    limit: int = _LIMIT,
    device: str = _DEVICE,
    plots: bool = _PLOTS,
    max_wer_ratio: float = _MAX_RATIO,
) -> None:
    """Copy-synthesis gate: reference mel -> vocoder, judged against the original (WER ratio, MCD)."""
    _speech_cmd("vocoder", manifest, overrides, None, judge, judge_model_dir, None, out, config, batch_size, limit,
                device, plots, {"vocoder": vocoder}, max_wer_ratio)


@app.command("compare")
@user_errors
def compare_cmd(
    a: Path = typer.Argument(..., help="Report A (report.json)."),
    b: Path = typer.Argument(..., help="Report B (report.json)."),
) -> None:
    """Print the differences between two evaluation reports (B - A)."""
    from omni.eval.compare import compare_reports, format_comparison, load_report

    typer.echo(format_comparison(compare_reports(load_report(a), load_report(b)), str(a), str(b)))


@app.command("vision-probe")
@user_errors
def vision_probe_cmd(
    model: Path = typer.Option(..., "--model", help="Saved omni model directory (a stage's final/, a bundle's model/)."),
    train: Path = typer.Option(..., "--train", help="Image-QA manifest the probes learn from (image_qa_train.jsonl)."),
    test: Path = typer.Option(..., "--test", help="Image-QA manifest they are scored on (image_qa_test.jsonl)."),
    out: Path = _OUT,
    random: bool = typer.Option(False, "--random", help="Probe a freshly initialised tower of the model's config "
                                "instead of its trained one (the baseline of a tower that learned nothing)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --random initialisation."),
) -> None:
    """Linear probe per image-question kind on the projector's output: does the vision branch see the answer?"""
    import torch

    from omni.eval.vision_probe import probe_vision, write_probe
    from omni.model import OmniModel
    from omni.model.vision import VisionBranch
    from omni.model.vision_inputs import VisionProcessor

    omni = OmniModel.from_pretrained(model)
    if omni.vision is None:
        raise ValueError(f"{model}: the model has no vision branch")
    vision = omni.vision
    if random:
        torch.manual_seed(seed)
        vision = VisionBranch(vision.config)
    result = probe_vision(vision.eval(), VisionProcessor(omni.cfg.vision), train, test)
    md = write_probe(result, out, f"{model}{' (re-initialised)' if random else ''}")
    for k in result.accuracy:
        typer.echo(f"{k:<10} probe {result.accuracy[k]:.3f}  chance {result.chance[k]:.3f}  "
                   f"({result.train[k]} train, {result.test[k]} test)")
    typer.echo(f"report: {md}")
