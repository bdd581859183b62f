"""Training the audio tokenizer on the shared training loop (``omni train tokenizer CONFIG``).

Objectives, all per utterance (each clip weighs the same, exact across processes and accumulation):

* multi-scale mel reconstruction (L1 + L2) of the decoder's coarse and refined mel;
* commitment loss of every RVQ level (``vector_quantize_pytorch``'s, a frame mean per micro-batch);
* transcription: a frozen causal LM reads the quantized frames through an adapter and predicts the
  transcript (per-token NLL averaged per utterance);
* optionally, CTC (:mod:`audio_tokenizer.ctc`): a light head spells the transcript's LM-tokenizer tokens
  from the quantized frames alone (``ctc_weight``), which pushes the codes to carry what was said.

The frozen LM lives in the task, not in the trained module, so checkpoints hold only the tokenizer and
the adapter; the CTC head is saved beside the final tokenizer (``tokenizer/ctc``, see
:class:`audio_tokenizer.ctc.CodesTranscriber`). Evaluation on the dev manifests reports mel error, transcription NLL and, per level, codebook
usage and perplexity (TensorBoard, ``eval_report.json``, figures under ``figures/``). A finished run writes
the tokenizer with ``save_pretrained`` to ``<output_dir>/tokenizer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from audio_tokenizer.augment import SpecAugmentConfig, spec_augment
from audio_tokenizer.ctc import CTC_DIR, CTCHead, ctc_per_token, greedy_ctc, save_ctc_head
from audio_tokenizer.data import (
    SpeechBatch,
    SpeechDataset,
    SpeechItem,
    collate_speech,
    filter_by_length,
    manifest_speech,
)
from audio_tokenizer.losses import multiscale_mel_loss
from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig, TokenizerOutput
from audio_tokenizer.phonemes import PhonemeCTCHead, PhonemeVocab
from audio_tokenizer.quantizer import code_counts, codebook_perplexity, codebook_usage
from audio_tokenizer.transcription import (
    FrozenLM,
    TranscriptionAdapter,
    TranscriptionConfig,
    transcription_nll,
)
from omni.config import check, option
from omni.text.losses import token_nll
from omni.training.config import LoopConfig, OptimConfig
from omni.training.trainer import StepOutput, TrainContext, TrainResult, to_device

FINAL_DIR = "tokenizer"
REPORT_FILE = "eval_report.json"


@dataclass
class TokenizerTrainConfig:
    """``omni train tokenizer``: the model, its data, its objectives and the loop."""

    train_manifests: list[str] = option(help="Manifests whose audio (with transcripts where given) trains the tokenizer.")
    loop: LoopConfig = option(help="Steps, batch, checkpoints, logging (output_dir is the run directory).")
    model: AudioTokenizerConfig = option(default_factory=AudioTokenizerConfig, help="Tokenizer architecture.")
    transcription: TranscriptionConfig = option(default_factory=TranscriptionConfig,
                                                help="Frozen-LM transcription objective.")
    optim: OptimConfig = option(default_factory=OptimConfig, help="AdamW and its schedule.")
    dev_manifests: list[str] = option(default_factory=list, help="Manifests evaluated every loop.eval_every steps and at the end.")
    max_seconds: float = option(30.0, help="Clips longer than this are left out of training (at most model.chunk_seconds).")
    mel_weight: float = option(1.0, help="Weight of the multi-scale mel reconstruction loss.")
    mel_scales: list[int] = option(default_factory=lambda: [1, 2, 4, 8],
                                   help="Time-pooling windows (mel frames) of the multi-scale mel loss.")
    mel_l2_weight: float = option(1.0, help="Weight of the squared error next to the absolute error in the mel loss.")
    encoder_lr: float | None = option(None, help="Learning rate of the Whisper encoder (null: optim.lr).")
    ctc_weight: float = option(
        0.0, help="Weight of the auxiliary CTC loss (per target token, per utterance) of a light head spelling the "
        "transcript's LM-tokenizer tokens from the quantized frames; 0 disables it. Needs transcription.lm_path "
        "(its tokenizer gives the targets).")
    ctc_hidden: int = option(256, help="Hidden width of the CTC head (a 3-wide convolution, then a linear layer).")
    phoneme_ctc_weight: float = option(
        0.0, help="Weight of the phoneme CTC loss (per target phoneme, per utterance): a head upsamples the quantized "
        "frames 4x and spells the transcript's espeak-ng phonemes (audio_tokenizer/phonemes.py), which pushes the "
        "codes to carry the sounds of speech, shared by every word; 0 disables it.")
    phoneme_accent: str = option("en-us", help="espeak-ng voice whose pronunciation gives the phoneme targets.")
    spec_augment: SpecAugmentConfig = option(
        default_factory=SpecAugmentConfig, help="Frequency / time masks on the encoder's input mel during training "
        "(audio_tokenizer/augment.py; the reconstruction target stays clean). Off by default.")
    eval_batch_size: int = option(16, help="Clips per evaluation batch (per process).")
    eval_max_clips: int = option(0, help="Evaluate on at most this many dev clips (0: all).")

    def __post_init__(self) -> None:
        check(bool(self.train_manifests), "train_manifests", "needs at least one manifest")
        check(0 < self.max_seconds <= self.model.chunk_seconds, "max_seconds",
              f"must be in (0, model.chunk_seconds = {self.model.chunk_seconds}], got {self.max_seconds}")
        check(self.mel_weight >= 0, "mel_weight", "must be >= 0")
        check(bool(self.mel_scales) and all(s >= 1 for s in self.mel_scales), "mel_scales", "needs scales >= 1")
        check(self.mel_l2_weight >= 0, "mel_l2_weight", "must be >= 0")
        check(self.mel_weight > 0 or self.transcription.enabled, "mel_weight",
              "with no transcription objective the mel loss is the only one and needs a weight > 0")
        check(self.encoder_lr is None or self.encoder_lr > 0, "encoder_lr", "must be > 0 or null")
        check(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
        check(self.eval_max_clips >= 0, "eval_max_clips", "must be >= 0")
        check(self.ctc_weight >= 0, "ctc_weight", "must be >= 0")
        check(self.ctc_weight == 0 or self.transcription.lm_path is not None, "ctc_weight",
              "the CTC targets come from the transcription LM's tokenizer: set transcription.lm_path")
        check(self.ctc_hidden >= 1, "ctc_hidden", "must be >= 1")
        check(self.phoneme_ctc_weight >= 0, "phoneme_ctc_weight", "must be >= 0")


@dataclass
class TrainForward:
    """One forward pass of :class:`TokenizerTrainModel`: the tokenizer's output and the adapted frames for the LM."""

    out: TokenizerOutput
    lm_audio: torch.Tensor | None  # (B, T, H_lm)
    ctc_log_probs: torch.Tensor | None = None  # (B, T, V + 1)
    phoneme_log_probs: torch.Tensor | None = None  # (B, 4T, P + 1)


class TokenizerTrainModel(nn.Module):
    """What the loop trains: the tokenizer and, with the transcription objective, its LM adapter."""

    def __init__(self, tokenizer: AudioTokenizer, adapter: TranscriptionAdapter | None = None,
                 ctc_head: CTCHead | None = None, phoneme_head: PhonemeCTCHead | None = None,
                 augment: SpecAugmentConfig | None = None):
        super().__init__()
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.ctc_head = ctc_head
        self.phoneme_head = phoneme_head
        self.augment = augment if augment is not None and augment.enabled else None

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> TrainForward:
        """wav (B, S), lengths (B,) -> TrainForward; in training mode the encoder's input mel is SpecAugmented."""
        augment = partial(spec_augment, cfg=self.augment) if self.training and self.augment is not None else None
        out = self.tokenizer(wav, lengths, augment)
        q, n = out.quantized, out.code_lengths
        return TrainForward(out, self.adapter(q) if self.adapter is not None else None,
                            self.ctc_head(q, n) if self.ctc_head is not None else None,
                            self.phoneme_head(q, n) if self.phoneme_head is not None else None)


@dataclass
class LossTerms:
    """Per-utterance loss terms (B,) each, already weighted except where noted."""

    mel: torch.Tensor
    text: torch.Tensor  # mean NLL per transcript token, 0 for a clip without transcript (unweighted)
    commitment: torch.Tensor
    total: torch.Tensor
    ctc: torch.Tensor | None = None  # CTC loss per target token (unweighted), when the head is trained
    phoneme_ctc: torch.Tensor | None = None  # phoneme CTC loss per target phoneme (unweighted)


def loss_terms(fwd: TrainForward, batch: SpeechBatch, cfg: TokenizerTrainConfig, lm: FrozenLM | None) -> LossTerms:
    """Score one forward pass (pure apart from running the frozen LM)."""
    out = fwd.out
    batch_size = out.mel.shape[0]
    mel = multiscale_mel_loss(out.decoded.mel, out.mel, out.mel_lengths, cfg.mel_scales, cfg.mel_l2_weight)
    if out.decoded.coarse is not out.decoded.mel:
        mel = mel + multiscale_mel_loss(out.decoded.coarse, out.mel, out.mel_lengths, cfg.mel_scales, cfg.mel_l2_weight)
    commitment = out.commitment.sum().expand(batch_size)  # (B,): the library's batch frame-mean
    text = torch.zeros_like(mel)
    if lm is not None and fwd.lm_audio is not None and int(batch.text_lengths.max()) > 0:
        context = (lm.tokenizer.eos_token_id,) if cfg.transcription.separator else ()
        nll, count = transcription_nll(lm.model, fwd.lm_audio, out.code_lengths, batch.text_ids, batch.text_lengths,
                                       context)
        text = nll / count.clamp_min(1)
    total = cfg.mel_weight * mel + commitment + cfg.transcription.weight * text
    ctc = None
    if fwd.ctc_log_probs is not None:
        ctc = ctc_per_token(fwd.ctc_log_probs, out.code_lengths, batch.text_ids, batch.text_lengths,
                            blank=fwd.ctc_log_probs.shape[-1] - 1).loss
        total = total + cfg.ctc_weight * ctc
    phoneme_ctc = None
    if fwd.phoneme_log_probs is not None and batch.phoneme_ids is not None:
        up = fwd.phoneme_log_probs.shape[1] // max(out.codes.shape[1], 1)
        phoneme_ctc = ctc_per_token(fwd.phoneme_log_probs, out.code_lengths * up, batch.phoneme_ids,
                                    batch.phoneme_lengths, blank=fwd.phoneme_log_probs.shape[-1] - 1,
                                    drop_last=False).loss
        total = total + cfg.phoneme_ctc_weight * phoneme_ctc
    return LossTerms(mel, text, commitment, total, ctc, phoneme_ctc)


class TokenizerTask:
    """:class:`~omni.training.trainer.TrainTask` of the tokenizer: one phase, loss units = clips."""

    phases = ("main",)

    def __init__(self, cfg: TokenizerTrainConfig, lm: FrozenLM | None):
        self.cfg, self.lm = cfg, lm

    def batch_weight(self, batch: SpeechBatch) -> float:
        return float(batch.wav.shape[0])

    def compute_loss(self, model: nn.Module, batch: SpeechBatch, phase: str) -> StepOutput:
        fwd = model(batch.wav, batch.lengths)
        terms = loss_terms(fwd, batch, self.cfg, self.lm)
        sizes = self.cfg.model.quantizer.codebook_sizes
        stats = {f"codebook/perplexity_{i}": codebook_perplexity(c)
                 for i, c in enumerate(code_counts(fwd.out.codes.detach(), sizes))}
        sums = {"loss/mel": terms.mel.detach().sum(), "loss/text": terms.text.detach().sum(),
                "loss/commitment": terms.commitment.detach().sum()}
        if terms.ctc is not None:
            sums["loss/ctc"] = terms.ctc.detach().sum()
        if terms.phoneme_ctc is not None:
            sums["loss/phoneme_ctc"] = terms.phoneme_ctc.detach().sum()
        return StepOutput(loss=terms.total.sum(), sums=sums, stats=stats)


def param_groups(model: TokenizerTrainModel, cfg: TokenizerTrainConfig, log=print) -> list[dict]:
    """Trainable parameters in named groups (encoder at ``encoder_lr``, the rest at ``optim.lr``); logs counts.

    Every trainable parameter lands in exactly one group; frozen ones (a frozen encoder) in none.
    """
    groups: dict[str, list[nn.Parameter]] = {"encoder": [], "tokenizer": [], "adapter": []}
    frozen = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            frozen += p.numel()
        elif name.startswith("tokenizer.encoder."):
            groups["encoder"].append(p)
        elif name.startswith("adapter."):
            groups["adapter"].append(p)
        else:
            groups["tokenizer"].append(p)
    lrs = {"encoder": cfg.encoder_lr or cfg.optim.lr, "tokenizer": cfg.optim.lr, "adapter": cfg.optim.lr}
    out = [{"name": k, "params": v, "lr": lrs[k]} for k, v in groups.items() if v]
    counts = ", ".join(f"{g['name']} {sum(p.numel() for p in g['params']):,} (lr {g['lr']:g})" for g in out)
    log(f"trainable: {counts}; frozen: {frozen:,}")
    return out


def text_only_nll(lm: FrozenLM, batch: SpeechBatch) -> torch.Tensor:
    """Summed NLL of the transcripts under the LM alone (one end-of-text token as context, no audio): the
    baseline the transcription loss must beat for the codes to carry information about the words."""
    start = torch.full((batch.text_ids.shape[0], 1), lm.tokenizer.eos_token_id, device=batch.text_ids.device)
    ids = torch.cat([start, batch.text_ids], dim=1)  # (B, 1 + L)
    valid = torch.arange(ids.shape[1], device=ids.device)[None, :] <= batch.text_lengths[:, None]  # (B, 1 + L)
    labels = ids.masked_fill(~valid, -100)
    logits = lm.model(input_ids=ids.masked_fill(~valid, lm.tokenizer.eos_token_id), attention_mask=valid.long()).logits
    return token_nll(logits, labels)[0].sum()


def ctc_word_errors(fwd: TrainForward, batch: SpeechBatch, lm: FrozenLM) -> tuple[int, int]:
    """Greedy CTC transcripts of a batch scored against its targets: (word errors, reference words), after
    the English normaliser (the codes' phonetic-content gate, measured during training)."""
    from omni.eval.metrics import score_pair

    errors = words = 0
    hyps = greedy_ctc(fwd.ctc_log_probs, fwd.out.code_lengths, fwd.ctc_log_probs.shape[-1] - 1)
    for b, hyp in enumerate(hyps):
        n = int(batch.text_lengths[b]) - 1  # without the end-of-text token
        if n <= 0:
            continue
        ref = lm.tokenizer.decode(batch.text_ids[b, :n].tolist(), skip_special_tokens=True)
        counts = score_pair(ref, lm.tokenizer.decode(hyp, skip_special_tokens=True), "en").words
        errors, words = errors + counts.errors, words + counts.reference_length
    return errors, words


def evaluate_tokenizer(model: TokenizerTrainModel, ctx: TrainContext, items: list[SpeechItem],
                       cfg: TokenizerTrainConfig, lm: FrozenLM | None,
                       phonemes: list[list[int]] | None = None) -> dict[str, float]:
    """Dev-set metrics, sharded over processes and summed: mel error, transcription NLL, codebook usage/perplexity,
    with the CTC head its loss and greedy word error rate (``ctc_wer``), with the phoneme head its loss
    (``phoneme_ctc_loss``; ``phonemes`` are the items' phoneme ids).

    Writes ``eval_report.json`` and figures (mel reconstruction, codebook usage) on the main process.
    """
    acc = ctx.accelerator
    tok = model.tokenizer
    sizes = tok.codebook_sizes
    mine = items[acc.process_index::acc.num_processes]
    counts = [torch.zeros(k, dtype=torch.float64) for k in sizes]
    # clips, sum of per-clip mel loss, |error| sum, mel values, text nll sum, text tokens, text-only nll sum,
    # sum of per-clip CTC loss, greedy-CTC word errors, reference words, sum of per-clip phoneme CTC loss
    totals = torch.zeros(11, dtype=torch.float64)
    example = None
    scored = lm is not None and model.adapter is not None  # the transcription objective's NLL is measured
    if mine:
        encode_text = partial(lm.encode_text, max_tokens=cfg.transcription.max_text_tokens) if lm is not None else None
        mine_phonemes = phonemes[acc.process_index::acc.num_processes] if phonemes is not None else None
        data = SpeechDataset(mine, tok.sample_rate, encode_text, cfg.max_seconds, mine_phonemes)
        loader = torch.utils.data.DataLoader(data, batch_size=cfg.eval_batch_size, collate_fn=collate_speech)
        for batch in loader:
            batch = to_device(batch, acc.device)
            fwd = model(batch.wav, batch.lengths)
            out = fwd.out
            terms = loss_terms(fwd, batch, cfg, lm)
            frames = out.mel.shape[-1]
            mask = (torch.arange(frames, device=out.mel.device)[None, :] < out.mel_lengths[:, None])[:, None, :]
            err = ((out.decoded.mel[..., :frames] - out.mel).abs() * mask).sum()
            text_tokens = batch.text_lengths.sum() if scored else torch.tensor(0)
            text_nll = (terms.text * batch.text_lengths).sum() if scored else torch.tensor(0.0)
            text_only = text_only_nll(lm, batch) if scored else torch.tensor(0.0)
            words = ctc_word_errors(fwd, batch, lm) if fwd.ctc_log_probs is not None else (0, 0)
            totals += torch.tensor([out.mel.shape[0], float(terms.mel.sum()), float(err),
                                    float(mask.sum()) * out.mel.shape[1], float(text_nll), float(text_tokens),
                                    float(text_only), float(terms.ctc.sum()) if terms.ctc is not None else 0.0,
                                    *words, float(terms.phoneme_ctc.sum()) if terms.phoneme_ctc is not None else 0.0],
                                   dtype=torch.float64)
            for c, new in zip(counts, code_counts(out.codes, sizes)):
                c += new.double()
            if example is None:
                n = int(out.mel_lengths[0])
                example = (out.mel[0, :, :n].cpu(), out.decoded.mel[0, :, :n].cpu())
    totals = acc.reduce(totals.to(acc.device), reduction="sum").cpu()
    counts = [acc.reduce(c.to(acc.device), reduction="sum").cpu() for c in counts]
    clips = max(float(totals[0]), 1.0)
    metrics: dict[str, float] = {
        "loss_mel": float(totals[1]) / clips,
        "mel_l1": float(totals[2]) / max(float(totals[3]), 1.0),
        "bitrate": tok.bitrate,
        "clips": float(totals[0]),
    }
    if lm is not None and float(totals[5]) > 0:
        metrics["text_nll"] = float(totals[4]) / float(totals[5])
        metrics["text_nll_without_audio"] = float(totals[6]) / float(totals[5])
    if model.ctc_head is not None:
        metrics["ctc_loss"] = float(totals[7]) / clips
        if float(totals[9]) > 0:
            metrics["ctc_wer"] = float(totals[8]) / float(totals[9])
    if model.phoneme_head is not None:
        metrics["phoneme_ctc_loss"] = float(totals[10]) / clips
    for i, c in enumerate(counts):
        metrics[f"usage_{i}"] = codebook_usage(c)
        metrics[f"perplexity_{i}"] = codebook_perplexity(c)
    metrics["usage_min"] = min(metrics[f"usage_{i}"] for i in range(len(counts)))
    if ctx.is_main:
        _write_report(ctx, metrics, [c.long() for c in counts], sizes, example)
    return metrics


def _write_report(ctx: TrainContext, metrics: dict[str, float], counts: list[torch.Tensor], sizes: tuple[int, ...],
                  example: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    import matplotlib.pyplot as plt

    from audio_tokenizer.figures import mel_figure, usage_figure

    report = {"step": ctx.step, "metrics": metrics, "codebook_sizes": list(sizes),
              "levels": [{"level": i, "size": k, "usage": metrics[f"usage_{i}"], "perplexity": metrics[f"perplexity_{i}"]}
                         for i, k in enumerate(sizes)]}
    tmp = ctx.run_dir / (REPORT_FILE + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(ctx.run_dir / REPORT_FILE)
    figures = ctx.run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    writer = ctx.writer()
    made = [("codebook_usage", usage_figure(counts, f"dev codebook usage, step {ctx.step}"))]
    if example is not None:
        made.append(("mel_reconstruction", mel_figure(*example, title=f"dev clip, step {ctx.step}")))
    for name, fig in made:
        fig.savefig(figures / f"{name}.png", dpi=100)
        if writer is not None:
            writer.add_figure(f"eval/{name}", fig, global_step=ctx.step)
        plt.close(fig)


@dataclass
class TokenizerRun:
    """Outcome of :func:`train_tokenizer`."""

    result: TrainResult
    final_dir: Path | None
    metrics: dict[str, float]
    tokenizer: AudioTokenizer  # the trained model in memory (this process's copy)


def train_tokenizer(cfg: TokenizerTrainConfig) -> TokenizerRun:
    """Train (or resume) a tokenizer run and save the final tokenizer to ``<output_dir>/tokenizer``.

    Rerunning a finished run does nothing and returns its results; rerunning an interrupted one resumes it.
    Launch with ``torchrun --nproc_per_node N`` (or ``accelerate launch``) for N processes.
    """
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from omni.training.export import fit_for_export
    from omni.training.optim import build_optimizer, build_scheduler
    from omni.training.trainer import Trainer

    # the process group must exist before the quantizer is built: it then all-reduces its k-means and EMA
    state = PartialState(cpu=cfg.loop.cpu or not torch.cuda.is_available())
    log = state.print
    run_dir = Path(cfg.loop.output_dir)
    final_dir = run_dir / FINAL_DIR
    set_seed(cfg.loop.seed)
    # the LM is loaded for either objective: the transcription loss runs it, the CTC head spells its tokens
    # (the config checks that a CTC weight comes with lm_path)
    needs_lm = cfg.transcription.enabled or cfg.ctc_weight > 0
    lm = FrozenLM(cfg.transcription.lm_path, cfg.transcription.lm_dtype) if needs_lm else None
    tokenizer = AudioTokenizer(cfg.model)
    adapter = (TranscriptionAdapter(cfg.model.quantizer.dim, lm.hidden_size, cfg.transcription.adapter_hidden)
               if cfg.transcription.enabled else None)
    ctc_head = (CTCHead(cfg.model.quantizer.dim, len(lm.tokenizer), cfg.ctc_hidden)
                if lm is not None and cfg.ctc_weight > 0 else None)
    frame_seconds = tokenizer.samples_per_frame / tokenizer.sample_rate
    train_items, short, long = filter_by_length(manifest_speech(cfg.train_manifests), frame_seconds, cfg.max_seconds)
    if short or long:
        log(f"note: left out {short} clips shorter than one frame ({frame_seconds * 1000:g} ms) and {long} longer than "
            f"{cfg.max_seconds:g} s")
    dev_items: list[SpeechItem] = []
    if cfg.dev_manifests:
        dev_items, _, _ = filter_by_length(manifest_speech(cfg.dev_manifests), frame_seconds, cfg.max_seconds)
        if cfg.eval_max_clips:
            dev_items = dev_items[: cfg.eval_max_clips]
    encode_text = partial(lm.encode_text, max_tokens=cfg.transcription.max_text_tokens) if lm is not None else None
    phoneme_head, train_phonemes, dev_phonemes = None, None, None
    if cfg.phoneme_ctc_weight > 0:
        _, units = PhonemeVocab.from_texts([it.text or "" for it in train_items + dev_items], cfg.phoneme_accent)
        vocab = PhonemeVocab([u for seq in units[: len(train_items)] for u in seq])  # the training inventory
        train_phonemes = [vocab.encode(u) for u in units[: len(train_items)]]
        dev_phonemes = [vocab.encode(u) for u in units[len(train_items):]]
        phoneme_head = PhonemeCTCHead(cfg.model.quantizer.dim, len(vocab), cfg.ctc_hidden)
        log(f"phoneme CTC: {len(vocab)} phonemes ({' '.join(vocab.symbols)})")
    model = TokenizerTrainModel(tokenizer, adapter, ctc_head, phoneme_head, cfg.spec_augment)
    dataset = SpeechDataset(train_items, tokenizer.sample_rate, encode_text, cfg.max_seconds, train_phonemes)
    log(f"{len(train_items)} training clips, {len(dev_items)} dev clips; {tokenizer.num_codebooks} levels "
        f"{list(tokenizer.codebook_sizes)} at {tokenizer.frame_rate:g} Hz = {tokenizer.bitrate:.0f} bits/s")
    optimizer = build_optimizer(param_groups(model, cfg, log), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.loop.max_steps)
    evaluate = (partial(evaluate_tokenizer, items=dev_items, cfg=cfg, lm=lm, phonemes=dev_phonemes)
                if dev_items else None)
    trainer = Trainer(cfg.loop, TokenizerTask(cfg, lm), model, dataset, collate_speech, {"main": optimizer},
                      {"main": scheduler}, evaluate=evaluate, grad_clip=cfg.optim.grad_clip)
    if lm is not None:
        lm.to(trainer.acc.device)
    fit = fit_for_export(trainer, cfg, final_dir / "config.json")
    result = fit.result
    trained = trainer.acc.unwrap_model(trainer.model).tokenizer
    if not result.complete:
        return TokenizerRun(result, None, result.last_metrics, trained)
    if not fit.write_export:
        return TokenizerRun(result, final_dir, _report_metrics(run_dir), AudioTokenizer.from_pretrained(final_dir))
    if trainer.acc.is_main_process:
        head = trainer.acc.unwrap_model(trainer.model).ctc_head
        extra = (lambda d: save_ctc_head(d / CTC_DIR, head, lm.tokenizer)) if head is not None and lm is not None else None
        trained.save_pretrained(final_dir, extra=extra)
        log(f"saved the tokenizer to {final_dir}{' with its CTC head' if extra else ''}")
    return TokenizerRun(result, final_dir, _report_metrics(run_dir) or result.last_metrics, trained)


def _report_metrics(run_dir: Path) -> dict[str, float]:
    report = run_dir / REPORT_FILE
    return json.loads(report.read_text())["metrics"] if report.is_file() else {}

