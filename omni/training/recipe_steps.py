"""Recipe steps: one table mapping a config kind to the small function that runs it (``omni train pipeline``).

A recipe (:mod:`omni.training.pipeline`) lists steps by config YAML; the YAML's ``kind`` picks the runner here:

=================  =======================================================  ==========================
kind               runs                                                     output
=================  =======================================================  ==========================
corpus             :func:`omni.data.synth.corpus.build_corpus`              the step directory
images             :func:`omni.data.synth.image_set.build_image_set`        the step directory
lm                 :func:`omni.text.lm.train_lm` (text-LM warm-up + BPE)    ``<run>/model``
vision_warmup      :func:`omni.vision.warmup.train_vision` (tower warm-up)  ``<run>/model``
tokenizer          :func:`audio_tokenizer.train.train_tokenizer`            ``<run>/tokenizer``
code_cache         :func:`audio_tokenizer.cache.tokenize_manifest` per      the step directory
                   manifest (``<stem>.codes.jsonl`` beside each input)
flow_train         :func:`decoders.train_flow.train_flow`                   ``<run>/model``
vocoder_train      :func:`decoders.train_vocoder.train_vocoder`             ``<run>/model``
stage              :func:`omni.training.stage.train_stage`                  ``<run>/final``
bundle_assemble    :func:`omni.bundle.assemble_bundle`                      the step directory (bundle)
make_pairs         :func:`omni.align.pairs.make_pairs`                      ``<step>/pairs.jsonl``
dpo                :func:`omni.align.train.train_preference`                ``<run>/final``
eval_asr, eval_tts :mod:`omni.eval` (``inputs: {manifest, checkpoint}``)    the step directory (report)
eval_vocoder       copy-synthesis gate (``inputs: {manifest, vocoder}``)    the step directory (report)
eval_tokenizer     resynthesis gate (``inputs: {manifest, tokenizer,        the step directory (report)
                   flow, vocoder}`` or ``{manifest, checkpoint}``)
eval_qa            :func:`omni.eval.qa.evaluate_qa`                         the step directory (report)
recipe_report      :func:`omni.eval.recipe_report.write_recipe_report`      the step directory (report)
=================  =======================================================  ==========================

*Training* kinds (a ``loop``) write their run to ``loop.output_dir`` (set by the pipeline to the step
directory), resume from their newest checkpoint and are finished when the run is complete and the output
exists. The other kinds are finished when their step directory holds the ``.done`` marker, written
atomically after the runner returns (each builder also resumes on its own where it can).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni.config import check, option


# ---------------------------------------------------------------------------------------------- small step configs
@dataclass
class CodeCacheConfig:
    """``kind: code_cache``: cache audio-token codes of several manifests (``omni data tokenize`` for each)."""

    manifests: list[str] = option(help="Manifests to tokenize; each gets <stem>.codes.jsonl beside it.")
    tokenizer: str = option(help="Saved audio tokenizer directory (the tokenizer step's <run>/tokenizer).")
    shard_size: int = option(1000, help="Clips per codes shard file.")
    batch_seconds: float = option(120.0, help="Padded audio per encoder batch.")
    workers: int = option(1, help="Local processes (each takes every N-th shard).")
    device: str = option("cpu", help="cpu or cuda.")

    def __post_init__(self) -> None:
        check(bool(self.manifests), "manifests", "needs at least one manifest")
        check(bool(self.tokenizer.strip()), "tokenizer", "must name the tokenizer directory")
        check(self.shard_size >= 1, "shard_size", "must be >= 1")
        check(self.batch_seconds > 0, "batch_seconds", "must be > 0")
        check(self.workers >= 1, "workers", "must be >= 1")


@dataclass
class AssembleConfig:
    """``kind: bundle_assemble``: copy trained components into a checkpoint bundle (``omni bundle assemble``)."""

    model: str = option(help="Omni model directory (a stage's or DPO's <run>/final).")
    audio_tokenizer: str = option(help="Audio tokenizer directory (<run>/tokenizer).")
    flow: str = option(help="Flow decoder directory (<run>/model).")
    vocoder: str = option(help="Vocoder directory (<run>/model).")
    decoder: dict = option(default_factory=dict, help="Speech decoder settings of the bundle (n_steps, speaker, ...).")
    voices: list[str] = option(default_factory=list, help="Voices offered to users (empty: every flow speaker).")
    description: str = option("", help="Free text stored in bundle.yaml.")

    def __post_init__(self) -> None:
        for name in ("model", "audio_tokenizer", "flow", "vocoder"):
            check(bool(getattr(self, name).strip()), name, "must name a directory")


@dataclass
class PairsConfig:
    """``kind: make_pairs``: preference pairs from the model's best and worst sampled answers."""

    manifest: str = option(help="Prompt rows with meta.answer_key (conversations or preference rows).")
    model: str = option(help="The SFT model directory (save_pretrained).")
    candidates: int = option(4, help="Answers sampled per prompt.")
    temperature: float = option(1.0, help="Sampling temperature.")
    seed: int = option(0, help="Sampling seed.")
    speech_in: bool = option(False, help="Prompts heard as speech (code-cached manifest) or read as text.")
    max_rows: int = option(0, help="Use at most this many prompts (0: all).")
    min_gap: float = option(0.5, help="Keep a prompt only when best and worst scores differ by this much.")

    def __post_init__(self) -> None:
        check(self.candidates >= 2, "candidates", "needs >= 2 answers to choose best and worst")
        check(self.temperature > 0, "temperature", "must be > 0")
        check(self.max_rows >= 0, "max_rows", "must be >= 0")


# ---------------------------------------------------------------------------------------------- runners
@dataclass
class StepResult:
    """What a runner produced: its output path, and for training kinds the loop's step and completion."""

    output: Path
    step: int | None = None
    complete: bool = True
    summary: dict[str, Any] = field(default_factory=dict)


def _need(inputs: dict[str, str], key: str, kind: str) -> str:
    if not inputs.get(key):
        raise ValueError(f"a '{kind}' step needs inputs.{key} in the recipe (e.g. inputs: {{{key}: ...}})")
    return inputs[key]


def _corpus(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.data.synth.corpus import build_corpus

    s = build_corpus(cfg, run_dir, progress=False)
    return StepResult(run_dir, summary={"rendered": s.rendered, "hours": round(s.hours, 3), "manifests": s.manifests})


def _images(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.data.synth.image_set import build_image_set

    s = build_image_set(cfg, run_dir)
    return StepResult(run_dir, summary={"manifests": s.manifests})


def _lm(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.text.lm import train_lm

    run = train_lm(cfg)
    return StepResult(run.model_dir, run.result.step, run.result.complete)


def _vision(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.vision.warmup import train_vision

    run = train_vision(cfg)
    return StepResult(run.model_dir, run.result.step, run.result.complete)


def _tokenizer(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from audio_tokenizer.train import FINAL_DIR, train_tokenizer

    run = train_tokenizer(cfg)
    return StepResult(run.final_dir or run_dir / FINAL_DIR, run.result.step, run.result.complete,
                      summary={k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})


def _code_cache(cfg: CodeCacheConfig, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from audio_tokenizer.cache import KnownCodes, tokenize_manifest

    outs = {}
    known = KnownCodes()  # a clip several manifests share (an ASR clip is also a spoken question) is encoded once
    for m in cfg.manifests:
        r = tokenize_manifest(m, cfg.tokenizer, shard_size=cfg.shard_size, batch_seconds=cfg.batch_seconds,
                              workers=cfg.workers, device=cfg.device, progress=False, log=lambda s: None, known=known)
        outs[m] = {"out": str(r.manifest), "clips": r.clips, "reused": r.reused, "skipped": len(r.skipped)}
    return StepResult(run_dir, summary={"manifests": outs})


def _flow(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from decoders.train_flow import train_flow

    result, final = train_flow(cfg)
    return StepResult(final, result.step, result.complete)


def _vocoder(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from decoders.train_vocoder import train_vocoder

    result, final = train_vocoder(cfg)
    return StepResult(final, result.step, result.complete)


def _stage(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.training.stage import FINAL_DIR, train_stage

    run = train_stage(cfg)
    return StepResult(run.final_dir or run_dir / FINAL_DIR, run.result.step, run.result.complete)


def _dpo(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.align.train import train_preference
    from omni.training.stage import FINAL_DIR

    run = train_preference(cfg)
    return StepResult(run.final_dir or run_dir / FINAL_DIR, run.result.step, run.result.complete)


def _assemble(cfg: AssembleConfig, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.bundle import BundleConfig, assemble_bundle

    bundle = BundleConfig(decoder=dict(cfg.decoder), voices=list(cfg.voices), description=cfg.description)
    out = assemble_bundle(run_dir, cfg.model, cfg.audio_tokenizer, cfg.flow, cfg.vocoder, bundle, overwrite=True)
    return StepResult(out)


def _pairs(cfg: PairsConfig, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.align.pairs import ScoreWeights, make_pairs, write_rows
    from omni.data.manifest import load_manifest
    from omni.data.media import CachedMedia
    from omni.model import OmniModel

    model = OmniModel.from_pretrained(cfg.model).eval()
    rows = load_manifest(cfg.manifest)[: cfg.max_rows or None]
    media = CachedMedia(list(model.cfg.codebook_sizes), model.cfg.vision if model.vision is not None else None)
    pairs = make_pairs(model, rows, cfg.manifest, media, cfg.candidates, cfg.temperature, cfg.seed,
                       ScoreWeights(min_gap=cfg.min_gap), speech_in=cfg.speech_in, log=lambda s: None)
    if not pairs:
        raise ValueError(f"make_pairs: no prompt of {cfg.manifest} gave a clear best / worst answer (min_gap "
                         f"{cfg.min_gap}); sample more candidates or train the SFT model longer")
    out = run_dir / "pairs.jsonl"
    write_rows(pairs, str(out))
    return StepResult(out, summary={"pairs": len(pairs), "prompts": len(rows)})


def _eval_asr(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.bundle import load_bundle
    from omni.eval.asr import evaluate_asr
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer
    from omni.eval.report import finish_run

    manifest = _need(inputs, "manifest", "eval_asr")
    checkpoint = inputs.get("checkpoint")
    ctx = dist_context(cfg.recognizer.device)
    bundle = load_bundle(checkpoint, ctx.device) if cfg.recognizer.name == "omni" or checkpoint else None
    if cfg.recognizer.name == "omni" and bundle is None:
        raise ValueError("eval_asr with the omni recogniser needs inputs.checkpoint (a bundle)")
    rec = build_recognizer(cfg.recognizer, bundle)
    run = evaluate_asr(cfg, manifest, rec, ctx)
    if ctx.is_main:
        finish_run("asr", run, cfg, manifest, rec.name, run_dir, "speaker", checkpoint=checkpoint)
    return StepResult(run_dir)


def _eval_tts(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.bundle import load_bundle
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer
    from omni.eval.report import finish_run
    from omni.eval.speech import speech_report_extra
    from omni.eval.tts import evaluate_tts

    manifest = _need(inputs, "manifest", "eval_tts")
    checkpoint = _need(inputs, "checkpoint", "eval_tts")
    ctx = dist_context(cfg.judge.device)
    bundle = load_bundle(checkpoint, ctx.device)
    rec = build_recognizer(cfg.judge, bundle)
    run = evaluate_tts(cfg, manifest, bundle, rec, ctx, out_dir=run_dir)
    if ctx.is_main:
        finish_run("tts", run, cfg, manifest, "omni", run_dir, "voice", checkpoint=checkpoint, judge=rec.name,
                   extra=speech_report_extra(run))
    return StepResult(run_dir)


def _eval_vocoder(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer
    from omni.eval.report import finish_run
    from omni.eval.speech import speech_report_extra
    from omni.eval.vocoder_eval import CopySynthesis, evaluate_vocoder

    manifest = _need(inputs, "manifest", "eval_vocoder")
    ctx = dist_context(cfg.judge.device)
    copy = CopySynthesis(_need(inputs, "vocoder", "eval_vocoder"), cfg.griffin_lim_iters, ctx.device)
    rec = build_recognizer(cfg.judge)
    run = evaluate_vocoder(cfg, manifest, copy, rec, ctx, out_dir=run_dir)
    if ctx.is_main:
        report, _ = finish_run("vocoder", run, cfg, manifest, copy.name, run_dir, "voice", judge=rec.name,
                               extra=speech_report_extra(run))
        return StepResult(run_dir, summary={"wer_ratio": report["wer_ratio"]})
    return StepResult(run_dir)


def _eval_tokenizer(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.eval.parallel import dist_context
    from omni.eval.recognizers import build_recognizer
    from omni.eval.report import finish_run
    from omni.eval.speech import speech_report_extra
    from omni.eval.tokenizer_eval import (
        bundle_resynthesis,
        component_resynthesis,
        evaluate_tokenizer,
    )

    manifest = _need(inputs, "manifest", "eval_tokenizer")
    ctx = dist_context(cfg.judge.device)
    if inputs.get("checkpoint"):
        from omni.bundle import load_bundle

        parts = bundle_resynthesis(load_bundle(inputs["checkpoint"], ctx.device), cfg.voices)
    else:
        parts = component_resynthesis(*(_need(inputs, k, "eval_tokenizer") for k in ("tokenizer", "flow", "vocoder")),
                                      cfg.voices, ctx.device)
    rec = build_recognizer(cfg.judge)
    run = evaluate_tokenizer(cfg, manifest, parts, rec, ctx, out_dir=run_dir)
    if ctx.is_main:
        report, _ = finish_run("tokenizer", run, cfg, manifest, "tokenizer+decoder", run_dir, "voice", judge=rec.name,
                               checkpoint=inputs.get("checkpoint"), extra=speech_report_extra(run))
        return StepResult(run_dir, summary={"wer_ratio": report["wer_ratio"]})
    return StepResult(run_dir)


def _eval_qa(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.eval.qa import evaluate_qa

    report = evaluate_qa(cfg, _need(inputs, "manifest", "eval_qa"), _need(inputs, "checkpoint", "eval_qa"), run_dir)
    return StepResult(run_dir, summary={"accuracy": report["totals"]["accuracy"]})


def _report(cfg: Any, run_dir: Path, inputs: dict[str, str]) -> StepResult:
    from omni.eval.recipe_report import write_recipe_report

    files = write_recipe_report(cfg, run_dir)
    return StepResult(run_dir, summary={"markdown": str(files["markdown"])})


@dataclass(frozen=True)
class StepKind:
    """How the pipeline treats one config kind.

    Attributes:
        run: ``(config, step directory, inputs) -> StepResult``.
        training: a Trainer run (``loop.output_dir`` is the step directory; resumable from checkpoints).
        output: the output path inside the step directory (training kinds: the exported model).
        marker: a file inside ``output`` that proves it was written (training kinds).
        model: the output is an omni / text model that the next ``stage`` may start from.
        all_ranks: every process runs it (data-parallel); otherwise the main process runs it and the others wait.
    """

    run: Callable[[Any, Path, dict[str, str]], StepResult]
    training: bool = False
    output: str = ""
    marker: str = ""
    model: bool = False
    all_ranks: bool = False


STEPS: dict[str, StepKind] = {
    "corpus": StepKind(_corpus),
    "images": StepKind(_images),
    "lm": StepKind(_lm, training=True, output="model", marker="config.json", model=True, all_ranks=True),
    "vision_warmup": StepKind(_vision, training=True, output="model", marker="config.json", all_ranks=True),
    "tokenizer": StepKind(_tokenizer, training=True, output="tokenizer", marker="config.json", all_ranks=True),
    "code_cache": StepKind(_code_cache, all_ranks=True),
    "flow_train": StepKind(_flow, training=True, output="model", marker="config.json", all_ranks=True),
    "vocoder_train": StepKind(_vocoder, training=True, output="model", marker="config.json", all_ranks=True),
    "stage": StepKind(_stage, training=True, output="final", marker="omni_config.json", model=True, all_ranks=True),
    "dpo": StepKind(_dpo, training=True, output="final", marker="omni_config.json", model=True, all_ranks=True),
    "bundle_assemble": StepKind(_assemble),
    "make_pairs": StepKind(_pairs, output="pairs.jsonl"),
    "eval_asr": StepKind(_eval_asr, all_ranks=True),
    "eval_tts": StepKind(_eval_tts, all_ranks=True),
    "eval_vocoder": StepKind(_eval_vocoder, all_ranks=True),
    "eval_tokenizer": StepKind(_eval_tokenizer, all_ranks=True),
    "eval_qa": StepKind(_eval_qa),
    "recipe_report": StepKind(_report),
}

DONE_FILE = ".done"


def step_kind(kind: str, where: str) -> StepKind:
    """The entry of ``kind``; ValueError naming the step and the known kinds otherwise."""
    if kind not in STEPS:
        raise ValueError(f"recipe step '{where}': config kind '{kind}' is not a recipe step; known: {', '.join(STEPS)}")
    return STEPS[kind]


def step_output(kind: str, run_dir: Path) -> Path:
    """Where a step of ``kind`` with step directory ``run_dir`` puts its output."""
    spec = STEPS[kind]
    return run_dir / spec.output if spec.output else run_dir


def step_done(kind: str, run_dir: Path) -> bool:
    """Finished: training kinds — the run is complete and the output model is on disk; others — the ``.done`` marker."""
    from omni.training.checkpoint import run_complete

    spec = STEPS[kind]
    if spec.training:
        return run_complete(run_dir) and (step_output(kind, run_dir) / spec.marker).is_file()
    return (run_dir / DONE_FILE).is_file()


def mark_done(run_dir: Path, record: dict[str, Any]) -> None:
    """Write the ``.done`` marker (JSON: output, seconds, summary, config) atomically."""
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (DONE_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / DONE_FILE)
