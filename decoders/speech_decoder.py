"""SpeechDecoder: audio-token codes -> waveform (flow decoder + vocoder), whole or streamed chunk by chunk.

    decoder = SpeechDecoder.from_config(SpeechDecoderConfig(flow_dir="runs/flow/model",
                                                            vocoder_dir="runs/vocoder/model"))
    wav = decoder.synthesize(codes)                 # codes (T, 8) -> (T * 1920,) float32 at 24 kHz
    for chunk in decoder.stream(token_chunks):      # any iterable of (t, 8) code chunks
        play(chunk.samples)

Latency trade-off of streaming (12.5 Hz tokens, 4 mel frames per token, 480 samples per frame):

* ``first_chunk_tokens`` / ``chunk_tokens``: audio starts once the first chunk (plus look-ahead) has
  arrived and been decoded; smaller chunks start sooner but decode more context per second of audio.
* ``chunk_growth`` / ``max_chunk_tokens``: later chunks grow (6, 12, 24, 48, 96, 96 ... tokens by default), so
  the re-decoded context becomes a small share of the work while the first audio comes as early; the LLM
  must produce each chunk while the audio before it plays (about as long as the chunk with growth 2).
* ``lookahead_tokens``: each chunk waits for this many future tokens (80 ms each) before it is decoded;
  it makes the chunk's last frames match whole-utterance synthesis.
* ``left_context_tokens`` / ``vocoder_context_frames``: recomputed past, costs compute, not latency.
* ``crossfade_tokens`` / ``vocoder_crossfade_frames``: held back and cross-faded with the next chunk's
  recomputation (added latency: their duration), removing seams.
* ``vocoder_lookahead_frames``: mel frames the vocoder waits for (20 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from decoders.flow import FlowDecoder, validate_codes
from decoders.mel import MelFrontEnd
from decoders.streaming import AudioChunk, ChunkedStage, chunk_plan
from decoders.vocoder import HiFiGANVocoder
from omni.config import check, option


@dataclass
class SpeechDecoderConfig:
    """Which trained models to load, sampling settings, and the streaming chunk layout."""

    flow_dir: str | None = option(None, help="Directory of a trained flow decoder (model.safetensors + config.json).")
    vocoder_dir: str | None = option(None, help="Directory of a trained vocoder (model.safetensors + config.json).")
    n_steps: int | None = option(None, help="Euler steps (NFE); null = the flow decoder's default.")
    guidance_scale: float | None = option(None, help="Classifier-free guidance weight; null = the flow decoder's default.")
    temperature: float | None = option(None, help="Noise scale; null = the flow decoder's default.")
    seed: int = option(0, help="Noise seed: the same seed gives the same audio, whole or streamed.")
    speaker: str | None = option(None, help="Default speaker name of the flow decoder's table (null: unknown speaker).")
    device: str = option("cpu", help="Torch device for both models, e.g. cpu or cuda.")
    chunk_tokens: int = option(12, help="Tokens of the second streamed chunk (12 = 0.96 s of audio); later ones grow by chunk_growth.")
    first_chunk_tokens: int = option(6, help="Tokens of the first chunk (smaller = earlier first audio).")
    chunk_growth: float = option(
        2.0, help="Each chunk after the second is this many times the one before, up to max_chunk_tokens (1 = fixed "
                  "chunks): early chunks stay small for latency, later ones large so re-decoded context costs less.")
    max_chunk_tokens: int = option(96, help="Largest streamed chunk in tokens (96 = 7.7 s of audio).")
    left_context_tokens: int = option(8, help="Past tokens re-decoded with each chunk as context (>= crossfade_tokens).")
    lookahead_tokens: int = option(2, help="Future tokens each chunk waits for (80 ms each).")
    crossfade_tokens: int = option(1, help="Tokens of mel held back and cross-faded at each seam (1 = 4 frames).")
    vocoder_context_frames: int = option(16, help="Past mel frames the vocoder re-synthesises with each chunk.")
    vocoder_lookahead_frames: int = option(8, help="Future mel frames the vocoder waits for.")
    vocoder_crossfade_frames: int = option(2, help="Frames of waveform (x hop samples) held back and cross-faded.")

    def __post_init__(self) -> None:
        check(self.n_steps is None or self.n_steps >= 1, "n_steps", "must be >= 1")
        check(self.guidance_scale is None or self.guidance_scale >= 0, "guidance_scale", "must be >= 0")
        check(self.temperature is None or self.temperature > 0, "temperature", "must be > 0")
        check(self.chunk_tokens >= 1, "chunk_tokens", "must be >= 1")
        check(self.first_chunk_tokens >= 1, "first_chunk_tokens", "must be >= 1")
        check(1.0 <= self.chunk_growth <= 8.0, "chunk_growth", f"must be in [1, 8], got {self.chunk_growth}")
        check(self.max_chunk_tokens >= self.chunk_tokens, "max_chunk_tokens",
              f"must be >= chunk_tokens ({self.chunk_tokens})")
        for name in ("left_context_tokens", "lookahead_tokens", "crossfade_tokens", "vocoder_context_frames",
                     "vocoder_lookahead_frames", "vocoder_crossfade_frames"):
            check(getattr(self, name) >= 0, name, "must be >= 0")
        check(self.crossfade_tokens <= self.left_context_tokens, "crossfade_tokens",
              f"must be <= left_context_tokens ({self.left_context_tokens}): the cross-fade recomputes them")
        check(self.crossfade_tokens < min(self.chunk_tokens, self.first_chunk_tokens), "crossfade_tokens",
              "must be shorter than a chunk")
        check(self.vocoder_crossfade_frames <= self.vocoder_context_frames, "vocoder_crossfade_frames",
              f"must be <= vocoder_context_frames ({self.vocoder_context_frames})")


def _model_dir(value: str | None, field: str) -> Path:
    if not value:
        raise ValueError(f"{field} is not set: give the directory of a trained model (e.g. --{field.split('_')[0]})")
    path = Path(value)
    if not path.is_dir():
        raise FileNotFoundError(f"{field}: {path}: model directory not found")
    return path


class SpeechDecoder:
    """Flow decoder + vocoder with whole-utterance and streaming synthesis.

    Args:
        flow: trained flow decoder.
        vocoder: trained vocoder (same mel settings); its weight norm is folded for inference, in place.
        cfg: sampling and streaming settings (its model directories are not used here).
    """

    def __init__(self, flow: FlowDecoder, vocoder: HiFiGANVocoder, cfg: SpeechDecoderConfig | None = None):
        self.cfg = cfg or SpeechDecoderConfig()
        if flow.cfg.mel != vocoder.cfg.mel:
            raise ValueError(f"flow decoder and vocoder use different mel settings: {flow.cfg.mel} vs {vocoder.cfg.mel}")
        self.device = torch.device(self.cfg.device)
        self.flow = flow.eval().to(self.device)
        self.vocoder = vocoder.eval().fold_weight_norm().to(self.device)  # inference only: weight norm folded
        self.front_end = MelFrontEnd(flow.cfg.mel)
        self.sample_rate = flow.cfg.mel.sample_rate

    @classmethod
    def from_config(cls, cfg: SpeechDecoderConfig) -> SpeechDecoder:
        """Load both models from their local directories (clear error when a path is missing)."""
        flow = FlowDecoder.from_pretrained(_model_dir(cfg.flow_dir, "flow_dir"))
        vocoder = HiFiGANVocoder.from_pretrained(_model_dir(cfg.vocoder_dir, "vocoder_dir"))
        return cls(flow, vocoder, cfg)

    @property
    def samples_per_token(self) -> int:
        """Waveform samples per audio token (1920 at 24 kHz)."""
        return self.flow.cfg.frames_per_token * self.flow.cfg.mel.hop_length

    # ---- pieces ------------------------------------------------------------------------

    def _speaker(self, speaker: str | torch.Tensor | None) -> torch.Tensor | None:
        if self.flow.cfg.speaker_dim == 0:
            return None
        speaker = self.cfg.speaker if speaker is None else speaker
        if isinstance(speaker, str):
            if speaker not in self.flow.cfg.speakers:
                raise ValueError(f"unknown speaker '{speaker}'; known: {', '.join(self.flow.cfg.speakers) or '(none)'}")
            return torch.tensor(self.flow.speaker_index(speaker))
        return torch.tensor(0) if speaker is None else torch.as_tensor(speaker)

    def decode_mel(self, codes: torch.Tensor, speaker: str | torch.Tensor | None = None, start_frame: int = 0) -> torch.Tensor:
        """Codes (T, K) -> log-mel (M, T r) with the configured sampling settings."""
        codes = validate_codes(codes, self.flow.cfg.codebook_sizes)
        c = self.cfg
        return self.flow.generate(codes.to(self.device), speaker=self._speaker(speaker), n_steps=c.n_steps,
                                  guidance_scale=c.guidance_scale, temperature=c.temperature, seed=c.seed,
                                  start_frame=start_frame).cpu()

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (M, F) -> waveform (F hop,)."""
        return self.vocoder(mel.unsqueeze(0).to(self.device))[0].float().cpu()

    # ---- whole utterance -----------------------------------------------------------------

    def synthesize(self, codes: torch.Tensor | np.ndarray | list, speaker: str | torch.Tensor | None = None) -> torch.Tensor:
        """Codes (T, K) -> waveform (T x samples_per_token,) float32 in [-1, 1].

        Raises:
            ValueError: codes out of their codebook's range, wrong number of codebooks, empty.
        """
        return self.vocode(self.decode_mel(codes, speaker))

    # ---- streaming ------------------------------------------------------------------------

    def stream(self, codes_iter: Iterable[torch.Tensor | np.ndarray | list],
               speaker: str | torch.Tensor | None = None) -> Iterator[AudioChunk]:
        """Yield waveform chunks while code chunks (t, K) arrive (t may vary, 1 is fine).

        Concatenating the chunks' samples gives the utterance (see the module docstring for the
        chunk, context, look-ahead and cross-fade settings and their latency). Codes that make several
        chunks ready at once (the producer is ahead of the decoder) are decoded in one window, except a
        stream's first chunk, which stays alone for an early first audio.

        Raises:
            ValueError: a bad code chunk (range, codebooks), or a stream with no codes at all.
        """
        c, r, k = self.cfg, self.flow.cfg.frames_per_token, len(self.flow.cfg.codebook_sizes)
        spk = self._speaker(speaker)
        tokens = torch.zeros(0, k, dtype=torch.long)
        mel = torch.zeros(self.flow.cfg.mel.n_mels, 0)  # final mel frames so far
        hop = self.flow.cfg.mel.hop_length

        def flow_window(lo: int, hi: int) -> torch.Tensor:
            return self.flow.generate(tokens[lo:hi].to(self.device), speaker=spk, n_steps=c.n_steps,
                                      guidance_scale=c.guidance_scale, temperature=c.temperature, seed=c.seed,
                                      start_frame=lo * r).cpu()  # (M, (hi - lo) r)

        def vocoder_window(lo: int, hi: int) -> torch.Tensor:
            return self.vocode(mel[:, lo:hi])  # ((hi - lo) hop,)

        flow_stage = ChunkedStage(flow_window, r, c.left_context_tokens, c.lookahead_tokens, c.crossfade_tokens)
        voc_stage = ChunkedStage(vocoder_window, hop, c.vocoder_context_frames, c.vocoder_lookahead_frames,
                                 c.vocoder_crossfade_frames)
        emitted = n_chunks = 0

        def advance(final: bool) -> Iterator[AudioChunk]:
            nonlocal mel, emitted, n_chunks
            n = tokens.shape[0]
            ends = list(chunk_plan(n, flow_stage.done, c.first_chunk_tokens, c.chunk_tokens, c.lookahead_tokens, final,
                                   growth=c.chunk_growth, max_chunk=c.max_chunk_tokens, index=n_chunks))
            n_chunks += len(ends)
            if final and not ends:
                ends = [n]  # flush what is held back
            if len(ends) > 1:  # codes queued up (the LLM is ahead): one window for all but a stream's first chunk,
                # which stays alone for an early first audio; each window is NFE estimator calls
                ends = [ends[-1]] if flow_stage.done else [ends[0], ends[-1]]
            for end in ends:
                last = final and end == n
                new_mel = flow_stage.step(n, end, last)
                if new_mel is not None:
                    mel = torch.cat([mel, new_mel], dim=1)
                f = mel.shape[1]
                upto = f if last else max(voc_stage.done, f - c.vocoder_lookahead_frames)
                wav = voc_stage.step(f, upto, last)
                if wav is not None and (wav.numel() or last):
                    yield AudioChunk(samples=wav, start=emitted, sample_rate=self.sample_rate, final=last)
                    emitted += wav.numel()

        for i, chunk in enumerate(codes_iter):
            chunk = torch.as_tensor(np.asarray(chunk) if isinstance(chunk, list) else chunk)
            if chunk.dim() == 1:
                chunk = chunk.unsqueeze(0)  # one frame (K,) -> (1, K)
            if chunk.shape[0] == 0:
                continue
            tokens = torch.cat([tokens, validate_codes(chunk, self.flow.cfg.codebook_sizes, f"code chunk {i}")])
            yield from advance(final=False)
        if tokens.shape[0] == 0:
            raise ValueError("codes: empty code sequence (the stream ended before any code frame arrived)")
        yield from advance(final=True)


def read_codes_file(path: str | Path, key: str | None = None) -> torch.Tensor:
    """Codes (T, K) from .npy, .pt, .json (list of lists) or a .safetensors shard (``key`` names the entry).

    Raises:
        FileNotFoundError / ValueError: naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: codes file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".pt":
            data = torch.load(path, map_location="cpu", weights_only=True)
        elif suffix == ".json":
            data = torch.tensor(json.loads(path.read_text(encoding="utf-8")))
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
                if key is None and len(keys) != 1:
                    raise ValueError(f"holds {len(keys)} entries; choose one with --key (e.g. {keys[:3]})")
                if key is not None and key not in keys:
                    raise ValueError(f"no entry '{key}' (it holds {len(keys)} entries, e.g. {keys[:3]})")
                data = f.get_tensor(key or keys[0])
        else:
            raise ValueError(f"unknown codes format '{suffix}' (use .npy, .pt, .json or .safetensors)")
    except Exception as e:  # unreadable or corrupt file, unknown entry
        raise ValueError(f"{path}: cannot read codes: {e}") from None
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"{path}: expected a (T, K) integer array, got {type(data).__name__}")
    return data
