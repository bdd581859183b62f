"""One decoding loop for text tokens and audio frames, with KV caches, per-modality sampling and batching.

Each step, for every row::

    LLM hidden h_t ──► text head ──► next token x (sampled with the text settings)
         text mode:  x is any text token; the modality switch <|audio_gen_start|> enters audio mode
         audio mode: x is <|audio|> (one more frame) or <|audio_end|> (back to text mode);
                     for <|audio|>, the audio head turns h_t into K codes (sampled level by level with the
                     audio settings, depth transformer with its own KV cache)
    next input: the token's embedding, or for a frame the audio embedding of its K codes

A row stops at a stop token (``<|im_end|>`` or the tokenizer's EOS) and the
batch stops when every row has, or after ``max_new_tokens`` steps (text
tokens + audio frames + markers). An audio segment longer than
``max_audio_frames`` is closed with ``<|audio_end|>``. Placeholders that
cannot be generated (images, video, input-audio start) are masked out.

The LLM cache is transformers' ``DynamicCache``, or on CUDA (``cache_implementation``) a static cache
whose one-position steps are compiled into CUDA graphs, the depth transformer's likewise
(:mod:`omni.model.static_decode`); ``use_cache=False`` re-runs the whole sequence every step (same
result; used to test the caches). Batches are left-padded with real-token position ids, so a row
generates what it would alone. The loop syncs with the host once per step (one small tensor:
"any frame?", "all done?"), as ``transformers.generate`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers import DynamicCache

from omni.config import check, option
from omni.model.backbone import LAST_HIDDEN_STATE
from omni.model.batch import OmniBatch, OmniExample, collate
from omni.model.sampling import Sampler, SamplingConfig
from omni.model.static_decode import CompileMode, static_llm

if TYPE_CHECKING:
    from omni.model.model import OmniModel


@dataclass
class GenerationConfig:
    """Limits, stop conditions and sampling of :func:`generate` (``kind: generation``)."""

    max_new_tokens: int = option(512, help="Most generated positions per row (text tokens, markers and audio frames).")
    max_audio_frames: int = option(
        1500, help="Most frames in one audio segment (1500 = 120 s at 12.5 Hz); the segment is then closed."
    )
    min_audio_frames: int = option(
        0, help="An audio segment is not closed before it has this many frames (<|audio_end|> is masked)."
    )
    text: SamplingConfig = option(default_factory=SamplingConfig, help="Sampling of text tokens.")
    audio: SamplingConfig = option(default_factory=SamplingConfig, help="Sampling of audio codes.")
    allow_audio: bool = option(True, help="Let the model switch to speech; false forces text-only replies.")
    use_cache: bool = option(True, help="KV caches for the LLM and the depth transformer (false: recompute).")
    cache_implementation: Literal["auto", "dynamic", "static"] = option(
        "auto", help="Kind of KV cache: dynamic (transformers' DynamicCache, grows each step), static (preallocated "
        "to a power-of-two length, fixed shapes, kept between calls: what CUDA graphs need) or auto (static on "
        "CUDA, dynamic elsewhere). Same tokens either way.",
    )
    compile: Literal["auto", "off", "trace", "default", "reduce-overhead", "max-autotune"] = option(
        "auto", help="torch.compile of the static cache's one-position steps (LLM and depth transformer): a "
        "torch.compile mode (reduce-overhead = CUDA graphs), off, trace (one dynamo graph run eagerly: a check, "
        "no speed-up) or auto (reduce-overhead on CUDA when the backbone compiles whole, else off). Ignored "
        "with the dynamic cache.",
    )
    seed: int | None = option(None, help="Seed of the sampling generator (null: torch's global RNG).")
    stop_token_ids: list[int] = option(
        default_factory=list, help="Extra token ids that end a row (besides <|im_end|> and the EOS token)."
    )
    ignore_eos: bool = option(False, help="Never stop at a stop token: always max_new_tokens steps (benchmarks).")
    return_logits: bool = option(
        False, help="Keep the raw text-head logits of every step in the output (B, S, V), like output_logits in "
        "transformers.",
    )

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        check(self.max_audio_frames >= 1, "max_audio_frames", "must be >= 1")
        check(0 <= self.min_audio_frames <= self.max_audio_frames, "min_audio_frames",
              "must be in [0, max_audio_frames]")


@dataclass
class DecodeStep:
    """What one step produced for every row (tensors on the model's device).

    Attributes:
        tokens: (B,) long, the chosen token (``<|audio|>`` for a frame; pad for rows already done).
        codes: (B, K) long, the frame's codes where ``is_frame`` (zeros elsewhere).
        is_frame: (B,) bool.
        active: (B,) bool, rows that produced something this step.
        logits: (B, V) the text head's raw logits that chose ``tokens`` (when ``return_logits``).
    """

    tokens: torch.Tensor
    codes: torch.Tensor
    is_frame: torch.Tensor
    active: torch.Tensor
    logits: torch.Tensor | None = None


@dataclass
class GenerationOutput:
    """Result of :func:`generate` (on the CPU).

    Attributes:
        sequences: (B, T_prompt + S) the left-padded prompts followed by the generated tokens.
        tokens: (B, S) generated tokens; pad after a row ended.
        frames: per row, (N_b, K) every generated audio frame in order.
        segments: per row, the frames of each audio segment, (n, K) each.
        text: per row, the generated text (special tokens left out).
        finish_reason: per row, "stop" (stop token) or "length" (max_new_tokens).
        logits: (B, S, V) raw text-head logits of every step (``return_logits``), else None.
    """

    sequences: torch.Tensor
    tokens: torch.Tensor
    frames: list[torch.Tensor]
    segments: list[list[torch.Tensor]]
    text: list[str]
    finish_reason: list[str]
    logits: torch.Tensor | None = None


def prompt_batch(model: OmniModel, prompts: OmniBatch | OmniExample | Sequence[OmniExample]) -> OmniBatch:
    """Left-padded batch of prompts (examples are collated; a batch must already be left-padded)."""
    if isinstance(prompts, OmniExample):
        prompts = [prompts]
    if not isinstance(prompts, OmniBatch):
        prompts = collate(list(prompts), model.token_ids.pad, padding_side="left")
    if prompts.attention_mask is None:
        raise ValueError("generation needs an attention mask (packed batches cannot be generated from)")
    if not bool(prompts.attention_mask[:, -1].all()):
        raise ValueError("generation prompts must be left-padded (collate(..., padding_side='left'))")
    target = torch.zeros_like(prompts.audio_target)  # prompts are context only
    return replace(prompts, labels=None, audio_target=target).to(model.device)


def banned_in_text(model: OmniModel, allow_audio: bool) -> list[int]:
    """Token ids text mode never emits: media placeholders and markers, and the switch to speech unless allowed."""
    t = model.token_ids
    banned = [t.audio, t.audio_end, t.audio_start, t.image_start, t.image, t.image_end, t.video_start, t.video,
              t.video_end]
    return banned if allow_audio else [*banned, t.audio_gen_start]


def decode_plan(config: GenerationConfig, cuda: bool, compiles_whole: bool) -> tuple[bool, CompileMode]:
    """(static caches?, compile mode of their steps) for ``config`` on a CUDA device or not, for a backbone that
    ``transformers`` marks as compiling as one graph (``_can_compile_fullgraph``; MoE routing does not) or not."""
    kind = config.cache_implementation
    if not config.use_cache or kind == "dynamic" or (kind == "auto" and not cuda):
        return False, "off"
    mode = config.compile
    if mode == "auto":
        mode = "reduce-overhead" if cuda and compiles_whole else "off"
    return True, mode


def _audio_state(model: OmniModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(in_audio (B,) bool, frames in the open segment (B,) long) at the end of each prompt."""
    t = model.token_ids
    pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    real = mask.bool()
    starts = (ids == t.audio_start) | (ids == t.audio_gen_start)
    last_start = torch.where(starts & real, pos, -1).amax(-1)  # (B,)
    last_end = torch.where((ids == t.audio_end) & real, pos, -1).amax(-1)
    in_audio = last_start > last_end
    after = (pos > last_start.unsqueeze(-1)) & (ids == t.audio) & real
    return in_audio, torch.where(in_audio, after.sum(-1), 0)


#: ``processor(input_ids (B, T_prompt + s), logits (B, V)) -> logits (B, V)``, as ``transformers``' ``LogitsProcessor``.
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def decode_steps(model: OmniModel, batch: OmniBatch, config: GenerationConfig,
                 logits_processor: LogitsProcessor | None = None) -> Iterator[DecodeStep]:
    """The decoding loop (a generator of :class:`DecodeStep`); ``batch`` from :func:`prompt_batch`.

    ``logits_processor`` (a ``transformers`` ``LogitsProcessor`` or ``LogitsProcessorList`` works) sees the
    sequence so far (prompt + generated tokens, ``<|audio|>`` for frames) and the text head's raw logits
    before each step's choice, in text and in audio mode (where only ``<|audio|>`` / ``<|audio_end|>`` are
    then allowed); callers use it to steer generation (e.g. force a modality switch). Raw logits are what
    ``return_logits`` keeps.
    """
    with ExitStack() as lent:  # a static cache is lent to this generation until it ends (or is closed)
        yield from _decode_steps(model, batch, config, logits_processor, lent)


def _decode_steps(model: OmniModel, batch: OmniBatch, config: GenerationConfig,
                  logits_processor: LogitsProcessor | None, lent: ExitStack) -> Iterator[DecodeStep]:
    t = model.token_ids
    dev = model.device
    b = batch.input_ids.shape[0]
    k = model.cfg.num_codebooks
    gen = None
    if config.seed is not None:
        gen = torch.Generator(device=dev).manual_seed(config.seed)
    text_sampler, audio_sampler = Sampler(config.text, gen), Sampler(config.audio, gen)

    # symbols that are never generated in text mode / the two allowed in audio mode
    vocab = model.backbone.get_output_embeddings().weight.shape[0]
    text_mask = torch.zeros(vocab, dtype=torch.bool, device=dev)
    text_mask[banned_in_text(model, config.allow_audio)] = True
    audio_mask = torch.ones(vocab, dtype=torch.bool, device=dev)
    audio_mask[[t.audio, t.audio_end]] = False
    starts = torch.tensor(t.audio_starts, device=dev)
    stops = torch.tensor([] if config.ignore_eos else sorted(set(t.eos) | set(config.stop_token_ids)),
                         dtype=torch.long, device=dev)

    in_audio, seg_frames = _audio_state(model, batch.input_ids, batch.attention_mask)
    finished = torch.zeros(b, dtype=torch.bool, device=dev)
    pad_len = (batch.attention_mask == 0).sum(-1)  # (B,) left padding, ignored by the repetition penalty
    history = batch.input_ids  # (B, S) text history
    seg_start = torch.zeros(b, dtype=torch.long, device=dev)  # step index where each row's open segment began
    code_hist: list[torch.Tensor] = []  # per step (B, K): codes, or V_k where no frame

    # first forward over the prompt
    features = model.vision_features(batch)
    embeds = model.embed(batch, features)
    mask = batch.attention_mask
    positions = batch.position_ids
    static, mode = decode_plan(config, dev.type == "cuda", getattr(model.backbone, "_can_compile_fullgraph", False))
    if static:  # one more position per step but the last: prompt + max_new_tokens is enough
        llm = lent.enter_context(static_llm(model.backbone, b, embeds.shape[1] + config.max_new_tokens, mode))
        hidden, logits = llm.prefill(embeds, mask, positions)
    else:
        cache = DynamicCache(config=model.backbone.config) if config.use_cache else None
        hidden, logits = _llm(model, embeds, mask, positions, cache)

    sizes = torch.tensor(model.cfg.codebook_sizes, device=dev)
    sequence = batch.input_ids  # (B, T + s), for the logits processor
    for step in range(config.max_new_tokens):
        raw_logits = logits
        if logits_processor is not None:
            logits = logits_processor(sequence, logits)
        # ---- text head: next token, per mode
        text_logits = text_sampler.penalize(logits, history, pad_len).masked_fill(text_mask, float("-inf"))
        text_choice = text_sampler(text_logits)  # (B,)
        audio_logits = logits.masked_fill(audio_mask, float("-inf"))  # continue (<|audio|>) or stop
        # a processor may rule out both (a text-mode row forced to one token): such a row closes its segment, and
        # sampling never sees a row of nothing but -inf
        blocked = torch.isneginf(audio_logits[:, t.audio]) & torch.isneginf(audio_logits[:, t.audio_end])
        audio_logits[:, t.audio_end] = audio_logits[:, t.audio_end].masked_fill(blocked, 0.0)
        audio_choice = text_sampler(audio_logits)
        audio_choice = torch.where(seg_frames < config.min_audio_frames, t.audio, audio_choice)
        audio_choice = torch.where(seg_frames >= config.max_audio_frames, t.audio_end, audio_choice)
        token = torch.where(in_audio, audio_choice, text_choice)
        token = torch.where(finished, t.pad, token)
        active = ~finished
        is_frame = (token == t.audio) & active
        done = finished | torch.isin(token, stops)
        any_frame, all_done = torch.stack([is_frame.any(), done.all()]).tolist()  # the one host sync per step

        # ---- audio head: K codes for frames
        if any_frame:
            hist = torch.stack(code_hist, dim=1) if code_hist else None  # (B, S, K), codes of earlier steps
            pick = _code_picker(audio_sampler, hist, seg_start)
            codes = model.audio_head.generate(hidden, pick, use_cache=config.use_cache, static=static,
                                              compile=mode)  # (B, K)
            codes = torch.where(is_frame.unsqueeze(-1), codes, 0)
        else:
            codes = torch.zeros(b, k, dtype=torch.long, device=dev)
        yield DecodeStep(tokens=token, codes=codes, is_frame=is_frame, active=active,
                         logits=raw_logits if config.return_logits else None)

        # ---- state
        if audio_sampler.penalizes:
            code_hist.append(torch.where(is_frame.unsqueeze(-1), codes, sizes))
        entering = torch.isin(token, starts) & active
        seg_start = torch.where(entering, step + 1, seg_start)
        in_audio = (in_audio | entering) & ~(token == t.audio_end)
        seg_frames = torch.where(in_audio, seg_frames + is_frame.long(), 0)
        finished = done
        if text_sampler.penalizes:
            history = torch.cat([history, token.unsqueeze(-1)], dim=1)
        if logits_processor is not None:
            sequence = torch.cat([sequence, token.unsqueeze(-1)], dim=1)
        if all_done or step + 1 == config.max_new_tokens:
            return

        # ---- next LLM step
        positions = positions[:, -1:] + 1
        step_embeds = model.embed_step(token, codes, is_frame)  # (B, 1, D)
        if static:
            hidden, logits = llm.step(step_embeds, positions)
            continue
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        if config.use_cache:
            hidden, logits = _llm(model, step_embeds, mask, positions, cache)
        else:
            # no cache: the whole sequence again (inputs are per position, so their embeddings are reused)
            embeds = torch.cat([embeds, step_embeds], dim=1)  # (B, T+1, D)
            full_pos = (mask.cumsum(-1) - 1).clamp(min=0) * mask  # (B, T+1)
            hidden, logits = _llm(model, embeds, mask, full_pos, None)


def _code_picker(sampler: Sampler, hist: torch.Tensor | None, seg_start: torch.Tensor):
    """Chooses level-k codes: repetition penalty over this segment's earlier codes of level k, then sampling.

    hist: (B, S, K) codes per earlier step (V_k where a step was no frame); seg_start: (B,) first step
    of each row's open segment (earlier steps are ignored by the penalty).
    """

    def pick(level: int, logits: torch.Tensor) -> torch.Tensor:
        if hist is not None:
            logits = sampler.penalize(logits, hist[:, :, level], seg_start)
        return sampler(logits)

    return pick


def _llm(model: OmniModel, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the backbone; (last hidden state (B, D), last text logits (B, V))."""
    out = model.backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=cache is not None, output_hidden_states=LAST_HIDDEN_STATE, logits_to_keep=1)
    return out.hidden_states[-1][:, -1], out.logits[:, -1]


def _config(config: GenerationConfig | None, overrides: dict[str, Any]) -> GenerationConfig:
    config = config or GenerationConfig()
    return replace(config, **overrides) if overrides else config


@torch.no_grad()
def generate(model: OmniModel, prompts: OmniBatch | OmniExample | Sequence[OmniExample],
             config: GenerationConfig | None = None, logits_processor: LogitsProcessor | None = None,
             **overrides: Any) -> GenerationOutput:
    """Generate text and speech for a batch of prompts.

    Args:
        model: the omni model (put it in eval mode).
        prompts: one example, a list (collated with left padding) or a left-padded batch; typically from
            ``model.encode(messages, add_generation_prompt=True)``.
        config: limits and sampling; keyword overrides replace its fields (``max_new_tokens=64``).
        logits_processor: optional steering hook (see :func:`decode_steps`).

    Returns:
        :class:`GenerationOutput`.
    """
    config = _config(config, overrides)
    batch = prompt_batch(model, prompts)
    tokens, codes, frames_mask, logits = [], [], [], []
    for step in decode_steps(model, batch, config, logits_processor):
        tokens.append(step.tokens)
        codes.append(step.codes)
        frames_mask.append(step.is_frame)
        if step.logits is not None:
            logits.append(step.logits)
    out = collect_output(model, batch, torch.stack(tokens, 1), torch.stack(codes, 1), torch.stack(frames_mask, 1),
                         config)
    if logits:
        out.logits = torch.stack(logits, 1).cpu()  # (B, S, V)
    return out


def collect_output(model: OmniModel, batch: OmniBatch, tokens: torch.Tensor, codes: torch.Tensor,
                   is_frame: torch.Tensor, config: GenerationConfig) -> GenerationOutput:
    """Assemble a :class:`GenerationOutput` from stacked steps: tokens (B, S), codes (B, S, K), is_frame (B, S)."""
    t = model.token_ids
    tokens, codes, is_frame = tokens.cpu(), codes.cpu(), is_frame.cpu()
    stops = set() if config.ignore_eos else set(t.eos) | set(config.stop_token_ids)
    frames, segments, texts, reasons = [], [], [], []
    for row in range(tokens.shape[0]):
        frames.append(codes[row][is_frame[row]])
        segs, current = [], None
        runs, reason = [[]], "length"  # text runs between audio segments, decoded one by one like the stream
        for s, tok in enumerate(tokens[row].tolist()):
            if tok in t.audio_starts:
                current = []
                runs.append([])
            elif tok == t.audio_end and current is not None:
                segs.append(torch.stack(current) if current else codes.new_zeros(0, codes.shape[-1]))
                current = None
            elif is_frame[row, s]:
                if current is None:  # the prompt opened the segment
                    current = []
                current.append(codes[row, s])
            elif tok in stops:
                reason = "stop"
                break
            else:
                runs[-1].append(tok)
        if current:
            segs.append(torch.stack(current))
        segments.append(segs)
        texts.append("".join(model.tokenizer.decode(r, skip_special_tokens=True) for r in runs if r))
        reasons.append(reason)
    sequences = torch.cat([batch.input_ids.cpu(), tokens], dim=1)
    return GenerationOutput(sequences=sequences, tokens=tokens, frames=frames, segments=segments, text=texts,
                            finish_reason=reasons)
