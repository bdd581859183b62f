"""Conditional flow-matching mel decoder conditioned on audio tokens (Matcha-TTS / CosyVoice style).

    codes (B, N, K) --8 embeddings, summed--> (B, N, D) --conv + transformers--> repeat x r --> conv
        --> mu (B, M, N r)          r = mel frames per token (4 at 24 kHz, hop 480, 12.5 Hz tokens)
    speaker id or vector --> (B, M);  prompt mel --> cond (B, M, T), zeros after the prompt
    x1 = target mel (B, M, T);  the estimator v(x_t, t | mu, speaker, cond) is trained with the
    optimal-transport CFM loss and sampled with Euler steps and classifier-free guidance.

``ConditionalFlowMatching`` holds the two Matcha-style methods,
``compute_loss`` and ``solve_euler``, around a swappable estimator;
``FlowDecoder`` adds the token encoder, speaker conditioning, prompt handling,
training forward, generation and save/load.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from decoders.estimator import EstimatorConfig, TransformerBlock, UNet1DEstimator, window_mask
from decoders.io import load_config_json, load_weights, save_pretrained
from decoders.losses import flow_matching_loss, ot_cfm_path
from decoders.mel import MelConfig
from omni.audio.codebooks import load_codebook_tables
from omni.config import check, option

KIND = "flow_decoder"


@dataclass
class FlowDecoderConfig:
    """Flow-matching mel decoder: token encoder, conditioning, CFM training and sampling settings."""

    mel: MelConfig = option(default_factory=MelConfig, help="Mel front end (shared with the vocoder).")
    codebook_sizes: list[int] = option(
        default_factory=lambda: [1024] * 8, help="Codebook size of each RVQ level (one entry per codebook).")
    condition_levels: int = option(
        0, help="RVQ levels the decoder reads, the first ones (0 = all): a decoder of the coarse levels alone "
        "ignores the fine ones, which a small LLM predicts at chance (reports/learning.md, L).")
    token_rate: float = option(12.5, help="Audio tokens per second; mel frame rate / token_rate must be an integer.")
    token_dim: int = option(512, help="Width of the token embeddings and the token encoder.")
    encoder_layers: int = option(4, help="Transformer layers of the token encoder (at token rate).")
    encoder_heads: int = option(8, help="Attention heads of the token encoder (must divide token_dim).")
    encoder_window: int = option(8, help="Tokens each token attends to on either side in the encoder (0 = all).")
    speaker_dim: int = option(
        0, help="Speaker embedding width; 0 disables speaker conditioning. External speaker vectors of this "
                "size are accepted at synthesis.")
    speakers: list[str] = option(
        default_factory=list, help="Speaker names with a learned embedding (manifest 'speaker' values); any "
                                   "other speaker uses a shared 'unknown' row. Needs speaker_dim > 0.")
    prompt_prob: float = option(0.5, help="Training: probability that a prefix of the target mel is given as prompt.")
    prompt_max_ratio: float = option(0.3, help="Training: longest prompt as a fraction of the utterance.")
    cfg_dropout: float = option(0.2, help="Training: probability of dropping all conditions (classifier-free guidance).")
    prior_weight: float = option(
        0.0, help="Training: weight of Matcha-TTS's prior loss, the per-frame mean squared error between the token "
        "encoder's output mu and the target mel. It makes mu an informative mel-like condition from the first "
        "steps, which a briefly trained estimator relies on; 0 leaves it out (CosyVoice).")
    sigma_min: float = option(1e-6, help="Width of the optimal-transport path's end point.")
    t_schedule: Literal["linear", "cosine"] = option(
        "cosine", help="Time warp for training times and Euler steps: cosine t' = 1 - cos(t pi / 2) puts more "
                       "steps near the noise end (CosyVoice); linear as in Matcha-TTS.")
    n_steps: int = option(10, help="Default Euler steps (NFE) at synthesis.")
    guidance_scale: float = option(0.7, help="Default classifier-free guidance weight w: v = (1 + w) v_cond - w v_uncond.")
    temperature: float = option(1.0, help="Default noise scale at synthesis.")
    estimator: EstimatorConfig = option(default_factory=EstimatorConfig, help="1-D U-Net estimator.")

    def __post_init__(self) -> None:
        check(len(self.codebook_sizes) >= 1, "codebook_sizes", "needs at least one codebook")
        check(all(k >= 2 for k in self.codebook_sizes), "codebook_sizes", f"each must be >= 2, got {self.codebook_sizes}")
        check(0 <= self.condition_levels <= len(self.codebook_sizes), "condition_levels",
              f"must be in [0, {len(self.codebook_sizes)}] (the number of codebooks), got {self.condition_levels}")
        check(self.token_rate > 0, "token_rate", "must be > 0")
        ratio = self.mel.frame_rate / self.token_rate
        check(abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1, "token_rate",
              f"mel frames per token must be a whole number: {self.mel.frame_rate:g} frames/s / "
              f"{self.token_rate:g} tokens/s = {ratio:g} (choose mel.hop_length accordingly)")
        check(self.token_dim >= 8, "token_dim", "must be >= 8")
        check(self.encoder_layers >= 0, "encoder_layers", "must be >= 0")
        check(self.encoder_heads >= 1 and self.token_dim % self.encoder_heads == 0, "encoder_heads",
              f"must divide token_dim ({self.token_dim})")
        check(self.encoder_window >= 0, "encoder_window", "must be >= 0 (0 = full attention)")
        check(self.speaker_dim >= 0, "speaker_dim", "must be >= 0")
        check(not self.speakers or self.speaker_dim > 0, "speakers", "a speaker table needs speaker_dim > 0")
        check(len(set(self.speakers)) == len(self.speakers), "speakers", "names must be unique")
        check(0 <= self.prompt_prob <= 1, "prompt_prob", "must be in [0, 1]")
        check(0 <= self.prompt_max_ratio < 1, "prompt_max_ratio", "must be in [0, 1)")
        check(0 <= self.cfg_dropout < 1, "cfg_dropout", "must be in [0, 1)")
        check(self.prior_weight >= 0, "prior_weight", "must be >= 0")
        check(0 <= self.sigma_min < 1, "sigma_min", "must be in [0, 1)")
        check(self.n_steps >= 1, "n_steps", "must be >= 1")
        check(self.guidance_scale >= 0, "guidance_scale", "must be >= 0")
        check(self.temperature > 0, "temperature", "must be > 0")

    @property
    def frames_per_token(self) -> int:
        """Mel frames per audio token (4 by default)."""
        return round(self.mel.frame_rate / self.token_rate)


@dataclass
class FlowLoss:
    """Training output: the loss summed over its frames (CFM, plus the weighted prior term when trained), how
    many frames count, and the CFM and prior sums alone (for logging)."""

    loss: torch.Tensor
    frames: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)
    cfm: torch.Tensor | None = None  # the CFM term's sum (None: ``loss`` is the CFM term alone)
    prior: torch.Tensor | None = None  # the prior term's sum, unweighted


def validate_codes(codes: torch.Tensor | np.ndarray | list, codebook_sizes: list[int], name: str = "codes") -> torch.Tensor:
    """Check audio-token codes and return them as a (T, K) int64 tensor.

    Raises:
        ValueError: not 2-D, wrong number of codebooks, empty, non-integer, or a code out of its codebook's range.
    """
    t = torch.as_tensor(np.asarray(codes) if isinstance(codes, list) else codes)
    k = len(codebook_sizes)
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a (T, {k}) array of codes, got shape {tuple(t.shape)}")
    if t.shape[1] != k:
        raise ValueError(f"{name}: expected {k} codebooks (shape (T, {k})), got {t.shape[1]} (shape {tuple(t.shape)})")
    if t.shape[0] == 0:
        raise ValueError(f"{name}: empty code sequence (0 frames)")
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name}: codes must be integers, got {t.dtype}")
    t = t.long()
    sizes = torch.tensor(codebook_sizes)
    bad = (t < 0) | (t >= sizes)  # (T, K)
    if bad.any():
        frame, level = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name}: code {int(t[frame, level])} at frame {frame}, codebook {level} is out of range "
                         f"[0, {codebook_sizes[level]}) ({int(bad.sum())} such codes)")
    return t


def frame_noise(seed: int, start: int, length: int, n_mels: int, block: int = 64) -> torch.Tensor:
    """Gaussian noise (n_mels, length) for absolute frames ``start .. start + length``, a pure function of (seed, frame).

    Streaming and whole-utterance synthesis draw the same noise for the same frame this way.
    """
    first, last = math.floor(start / block), math.floor((start + length - 1) / block)
    parts = []
    for b in range(first, last + 1):
        g = torch.Generator().manual_seed((seed * 1_000_003 + b * 7_919 + 12_345) % (2**63))
        parts.append(torch.randn(n_mels, block, generator=g))
    noise = torch.cat(parts, dim=1)  # (M, blocks * block)
    off = start - first * block
    return noise[:, off:off + length]


def time_span(n_steps: int, schedule: str, device: torch.device | None = None) -> torch.Tensor:
    """(n_steps + 1,) Euler time points from 0 to 1, warped by the schedule."""
    t = torch.linspace(0, 1, n_steps + 1, device=device)
    return 1 - torch.cos(t * 0.5 * math.pi) if schedule == "cosine" else t


Estimator = Callable[..., torch.Tensor]
"""``(x (B, M, T), mask (B, 1, T), mu (B, M, T), t (B,), spks (B, M) | None, cond (B, M, T) | None) -> (B, M, T)``."""


class ConditionalFlowMatching(nn.Module):
    """OT-CFM training loss and Euler sampler around a velocity estimator (Matcha-TTS ``CFM``).

    Args:
        estimator: the velocity network (a module, or any callable in tests).
        sigma_min: end-point width of the conditional path.
        cfg_dropout: training probability of dropping mu, speaker and prompt together.
        t_schedule: "linear" or "cosine" warp of training times.
    """

    def __init__(self, estimator: Estimator, sigma_min: float = 1e-6, cfg_dropout: float = 0.0,
                 t_schedule: str = "linear"):
        super().__init__()
        self.estimator = estimator
        self.sigma_min, self.cfg_dropout, self.t_schedule = sigma_min, cfg_dropout, t_schedule

    def compute_loss(self, x1: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, spks: torch.Tensor | None = None,
                     cond: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None,
                     t: torch.Tensor | None = None, z: torch.Tensor | None = None) -> FlowLoss:
        """Conditional flow-matching loss.

        Args:
            x1: (B, M, T) target mel.
            mask: (B, 1, T) valid frames (the estimator sees these).
            mu: (B, M, T) token conditioning.
            spks: (B, M) speaker conditioning or None.
            cond: (B, M, T) prompt mel or None.
            loss_mask: (B, 1, T) frames that count in the loss (default ``mask``; prompts are excluded).
            t: (B,) times; drawn uniformly (then warped by the schedule) when None.
            z: (B, M, T) noise; standard normal when None.

        Returns:
            FlowLoss with the summed per-frame MSE and the number of loss frames.
        """
        b = x1.shape[0]
        if t is None:
            t = torch.rand(b, device=x1.device, dtype=x1.dtype)
            if self.t_schedule == "cosine":
                t = 1 - torch.cos(t * 0.5 * math.pi)
        z = torch.randn_like(x1) if z is None else z
        path = ot_cfm_path(x1, z, t, self.sigma_min)
        if self.training and self.cfg_dropout > 0:
            keep = (torch.rand(b, device=x1.device) >= self.cfg_dropout).to(x1.dtype)  # (B,)
            mu = mu * keep.view(-1, 1, 1)
            spks = spks * keep.view(-1, 1) if spks is not None else None
            cond = cond * keep.view(-1, 1, 1) if cond is not None else None
        pred = self.estimator(path.y, mask, mu, t, spks, cond)  # (B, M, T)
        lm = mask if loss_mask is None else loss_mask
        return FlowLoss(loss=flow_matching_loss(pred, path.u, lm), frames=lm.sum())

    def velocity(self, x: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor,
                 spks: torch.Tensor | None, cond: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
        """Guided velocity ``(1 + w) v(x | c) - w v(x | no c)``; both branches in one batch. Shapes as in ``solve_euler``."""
        b = x.shape[0]
        tb = t.expand(b) if t.dim() == 0 else t
        if guidance_scale == 0:
            return self.estimator(x, mask, mu, tb, spks, cond)
        v = self.estimator(torch.cat([x, x]), torch.cat([mask, mask]), torch.cat([mu, torch.zeros_like(mu)]),
                           torch.cat([tb, tb]), None if spks is None else torch.cat([spks, torch.zeros_like(spks)]),
                           None if cond is None else torch.cat([cond, torch.zeros_like(cond)]))  # (2B, M, T)
        v_cond, v_uncond = v[:b], v[b:]
        return (1 + guidance_scale) * v_cond - guidance_scale * v_uncond

    @torch.no_grad()
    def solve_euler(self, z: torch.Tensor, t_span: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor,
                    spks: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                    guidance_scale: float = 0.0) -> torch.Tensor:
        """Integrate dx/dt = v(x, t) from t_span[0] to t_span[-1] with fixed Euler steps.

        Args:
            z: (B, M, T) start point (noise x temperature).
            t_span: (n + 1,) time points: n steps, n (x2 with guidance) estimator calls.
            mask: (B, 1, T) frame mask.
            mu: (B, M, T) token conditioning.
            spks: (B, M) or None.
            cond: (B, M, T) or None.
            guidance_scale: classifier-free guidance weight w (0 = no guidance).

        Returns:
            (B, M, T) the sample at t_span[-1].
        """
        x = z
        for i in range(1, len(t_span)):
            t, dt = t_span[i - 1], t_span[i] - t_span[i - 1]
            x = x + dt * self.velocity(x, mask, mu, t.to(x.dtype), spks, cond, guidance_scale)
        return x * mask


class TokenEncoder(nn.Module):
    """Codes -> mu at mel frame rate. (B, N, K) -> (B, M, N r)."""

    def __init__(self, cfg: FlowDecoderConfig):
        super().__init__()
        d = cfg.token_dim
        self.window = cfg.encoder_window
        self.rate = cfg.frames_per_token
        self.embeddings = nn.ModuleList(nn.Embedding(k, d) for k in cfg.codebook_sizes)
        self.levels = cfg.condition_levels or len(cfg.codebook_sizes)
        self.pre = nn.Conv1d(d, d, 5, padding=2)
        self.layers = nn.ModuleList(TransformerBlock(d, cfg.encoder_heads, 4, 0.0) for _ in range(cfg.encoder_layers))
        self.norm = nn.LayerNorm(d)
        self.up = nn.Conv1d(d, d, 3, padding=1)
        self.proj = nn.Linear(d, cfg.mel.n_mels)

    def load_codebooks(self, codebooks: list[torch.Tensor], seed: int = 0) -> float:
        """Set the tables to an audio tokenizer's RVQ codebooks (level k: (codebook_sizes[k], dim)), so the summed
        embedding starts as the frame's quantized vector (:func:`omni.audio.codebooks.load_codebook_tables`), scaled to
        the random tables' size (level 0's mean row norm sqrt(token_dim)). Returns the scale applied."""
        return load_codebook_tables(self.embeddings, codebooks, math.sqrt(self.embeddings[0].embedding_dim), seed)

    def forward(self, codes: torch.Tensor, code_mask: torch.Tensor) -> torch.Tensor:
        """codes: (B, N, K) int64; code_mask: (B, N). Returns mu (B, M, N r), zero on padding."""
        m = code_mask.unsqueeze(1).float()  # (B, 1, N)
        h = sum(emb(codes[..., i]) for i, emb in enumerate(self.embeddings[:self.levels]))  # (B, N, D): summed
        h = h + self.pre(h.transpose(1, 2) * m).transpose(1, 2)  # (B, N, D)
        attn = window_mask(m, self.window)  # (B, 1, N, N)
        for layer in self.layers:
            h = layer(h, attn)
        h = self.norm(h).transpose(1, 2) * m  # (B, D, N)
        h = h.repeat_interleave(self.rate, dim=2)  # (B, D, N r)
        fm = m.repeat_interleave(self.rate, dim=2)  # (B, 1, N r)
        h = h + self.up(h) * fm
        return self.proj(h.transpose(1, 2)).transpose(1, 2) * fm  # (B, M, N r)


class FlowDecoder(nn.Module):
    """Audio tokens -> mel spectrogram by conditional flow matching.

    Args:
        cfg: model settings.
    """

    def __init__(self, cfg: FlowDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = TokenEncoder(cfg)
        if cfg.speaker_dim > 0:
            self.speaker_table = nn.Embedding(len(cfg.speakers) + 1, cfg.speaker_dim)  # row 0: unknown speaker
            self.speaker_proj = nn.Linear(cfg.speaker_dim, cfg.mel.n_mels)
        self.cfm = ConditionalFlowMatching(UNet1DEstimator(cfg.mel.n_mels, cfg.estimator), cfg.sigma_min,
                                           cfg.cfg_dropout, cfg.t_schedule)

    # ---- conditioning --------------------------------------------------------------

    def speaker_index(self, name: str | None) -> int:
        """Table row of a speaker name (0 = unknown)."""
        return self.cfg.speakers.index(name) + 1 if name in self.cfg.speakers else 0

    def speaker_condition(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """(B,) table indices or (B, speaker_dim) vectors -> (B, M); None without speaker conditioning."""
        if self.cfg.speaker_dim == 0 or speaker is None:
            return None
        vec = self.speaker_table(speaker) if speaker.dim() == 1 else speaker.float()  # (B, S)
        if vec.shape[-1] != self.cfg.speaker_dim:
            raise ValueError(f"speaker embedding must have {self.cfg.speaker_dim} values, got {vec.shape[-1]}")
        return self.speaker_proj(vec)

    # ---- training --------------------------------------------------------------------

    def forward(self, mel: torch.Tensor, mel_mask: torch.Tensor, codes: torch.Tensor, code_mask: torch.Tensor,
                speaker: torch.Tensor | None = None, prompt_frames: torch.Tensor | None = None) -> FlowLoss:
        """Training loss; the first ``prompt_frames`` frames of each target are given as prompt and not scored.

        Args:
            mel: (B, M, T) target log-mel, T = N r.
            mel_mask: (B, 1, T).
            codes: (B, N, K) int64.
            code_mask: (B, N).
            speaker: (B,) speaker table indices or None.
            prompt_frames: (B,) prompt lengths in frames (drawn by the collate function) or None.
        """
        mu = self.encoder(codes, code_mask)  # (B, M, T)
        cond, loss_mask = None, mel_mask
        if prompt_frames is not None and bool((prompt_frames > 0).any()):
            frame = torch.arange(mel.shape[-1], device=mel.device).view(1, 1, -1)  # (1, 1, T)
            in_prompt = (frame < prompt_frames.view(-1, 1, 1)).to(mel.dtype)  # (B, 1, T)
            cond, loss_mask = mel * in_prompt, mel_mask * (1 - in_prompt)
        spks = self.speaker_condition(speaker)
        out = self.cfm.compute_loss(mel, mel_mask, mu, spks, cond, loss_mask=loss_mask)
        if self.cfg.prior_weight == 0:
            return out
        prior = flow_matching_loss(mu, mel, loss_mask)  # sum over loss frames of the per-frame mean squared error
        return FlowLoss(out.loss + self.cfg.prior_weight * prior, out.frames, out.stats, cfm=out.loss.detach(),
                        prior=prior.detach())

    # ---- synthesis -------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, codes: torch.Tensor, speaker: torch.Tensor | None = None, prompt_codes: torch.Tensor | None = None,
                 prompt_mel: torch.Tensor | None = None, n_steps: int | None = None, guidance_scale: float | None = None,
                 temperature: float | None = None, seed: int = 0, start_frame: int = 0) -> torch.Tensor:
        """Mel spectrogram of one utterance.

        Args:
            codes: (N, K) int64 codes (validated by the caller, see ``validate_codes``).
            speaker: () table index or (speaker_dim,) vector, or None.
            prompt_codes: (P, K) codes of a prompt whose mel is ``prompt_mel``; they precede ``codes``.
            prompt_mel: (M, P r) log-mel of the prompt.
            n_steps, guidance_scale, temperature: sampling settings (config defaults when None).
            seed: noise seed; noise is a function of (seed, absolute frame), see ``frame_noise``.
            start_frame: absolute index of the first frame of ``codes`` (streaming windows).

        Returns:
            (M, N r) log-mel of ``codes`` (the prompt part removed).
        """
        cfg = self.cfg
        device = next(self.parameters()).device
        r, m = cfg.frames_per_token, cfg.mel.n_mels
        p = 0 if prompt_codes is None else prompt_codes.shape[0]
        if p and (prompt_mel is None or prompt_mel.shape != (m, p * r)):
            got = None if prompt_mel is None else tuple(prompt_mel.shape)
            raise ValueError(f"prompt_mel must have shape ({m}, {p * r}) for {p} prompt tokens, got {got}")
        allc = codes if not p else torch.cat([prompt_codes, codes])  # (P + N, K)
        n = allc.shape[0]
        mu = self.encoder(allc.unsqueeze(0).to(device), torch.ones(1, n, device=device))  # (1, M, T)
        frames = n * r
        mask = torch.ones(1, 1, frames, device=device)
        cond = None
        if p:
            cond = torch.zeros(1, m, frames, device=device)
            cond[0, :, :p * r] = prompt_mel.to(device)
        spks = None
        if speaker is not None:
            spk = torch.as_tensor(speaker, device=device)
            spks = self.speaker_condition(spk.view(1) if spk.dim() == 0 else spk.view(1, -1))
        noise = torch.cat([frame_noise(seed + 1_000_000, 0, p * r, m) if p else torch.zeros(m, 0),
                           frame_noise(seed, start_frame, frames - p * r, m)], dim=1)  # (M, T)
        temp = cfg.temperature if temperature is None else temperature
        z = (noise * temp).unsqueeze(0).to(device)  # (1, M, T)
        t_span = time_span(n_steps or cfg.n_steps, cfg.t_schedule, device)
        w = cfg.guidance_scale if guidance_scale is None else guidance_scale
        mel = self.cfm.solve_euler(z, t_span, mask, mu, spks, cond, w)  # (1, M, T)
        return mel[0, :, p * r:]

    # ---- save / load -------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``directory``."""
        save_pretrained(directory, self, self.cfg, KIND)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> FlowDecoder:
        """Load a model saved by ``save_pretrained`` (local directory only)."""
        model = cls(load_config_json(directory, FlowDecoderConfig, KIND))
        load_weights(directory, model)
        return model.eval()
