"""The audio tokenizer: waveform -> 8 RVQ codes per 80 ms frame (12.5 Hz) -> log-mel.

::

    wav (B, S) 16 kHz --WhisperFrontend--> mel (B, M, S/160) 100 Hz
      --Whisper encoder--> (B, F/2, D) 50 Hz --residual conv downsampler--> (B, F/8, C) 12.5 Hz
      --linear--> (B, T, dim_q) --residual VQ (K levels)--> codes (B, T, K), quantized (B, T, dim_q)
      --mel decoder (conv upsampler + transformer + x2)--> mel (B, M, 8T)

Public API::

    tok = AudioTokenizer.from_pretrained("runs/tokenizer/tokenizer")
    codes = tok.encode(wav, sr)              # LongTensor (T, 8); any rate, mono or multi-channel
    batch = tok.encode_batch(wavs, lengths)  # CodesBatch: codes (B, T, 8) padded with -1, lengths (B,)
    mel = tok.decode(codes)                  # (n_mels, 8T) Whisper-normalised log-mel
    tok.codebook_sizes, tok.num_codebooks, tok.frame_rate, tok.bitrate

Clip length rule: a clip of S samples (at 16 kHz) has ``ceil((S // 160) / 8)``
frames; longer than ``chunk_seconds`` (30 s, Whisper's window) it is encoded
window by window and the codes concatenated (a last window shorter than one
frame is zero-padded to one frame).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audio_tokenizer.conv import ConvDownsampler, ConvStackConfig
from audio_tokenizer.decoder import DecoderConfig, DecoderOutput, MelDecoder
from audio_tokenizer.encoder import EncoderConfig, WhisperAudioEncoder
from audio_tokenizer.frontend import FrontendConfig, WhisperFrontend
from audio_tokenizer.quantizer import QuantizerConfig, ResidualQuantizer
from audio_tokenizer.waveform import prepare_waveform
from omni.config import check, from_data, option, to_data

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WHISPER_CONFIG_FILE = "whisper_config.json"


@dataclass
class AudioTokenizerConfig:
    """Architecture of the audio tokenizer (saved as config.json by ``save_pretrained``)."""

    frontend: FrontendConfig = option(default_factory=FrontendConfig, help="Whisper log-mel front end.")
    encoder: EncoderConfig = option(default_factory=EncoderConfig, help="Whisper encoder (pretrained directory or from scratch).")
    downsampler: ConvStackConfig = option(default_factory=ConvStackConfig,
                                          help="Residual conv downsampler from the encoder's 50 Hz to the token rate.")
    quantizer: QuantizerConfig = option(default_factory=QuantizerConfig, help="Residual vector quantizer.")
    decoder: DecoderConfig = option(default_factory=DecoderConfig, help="Mel decoder symmetric to the encoder.")
    chunk_seconds: float = option(
        30.0, help="Audio longer than this is encoded in windows of this length (<= the encoder's 30 s); a multiple "
        "of the token frame (80 ms).")

    def __post_init__(self) -> None:
        check(self.decoder.upsampler.factor == self.downsampler.factor, "decoder.upsampler.strides",
              f"must resample by the downsampler's factor {self.downsampler.factor} (mirror it), "
              f"got {self.decoder.upsampler.strides}")
        frame = self.samples_per_frame
        chunk = self.chunk_seconds * self.frontend.sample_rate
        check(chunk >= frame and abs(chunk / frame - round(chunk / frame)) < 1e-6, "chunk_seconds",
              f"must be a positive multiple of the token frame ({frame / self.frontend.sample_rate * 1000:g} ms), "
              f"got {self.chunk_seconds}")

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per token frame: hop x 2 (Whisper's stride-2 conv) x downsampling factor."""
        return self.frontend.hop_length * 2 * self.downsampler.factor

    @property
    def frame_rate(self) -> float:
        """Token frames per second (12.5 with Whisper's front end and a 4x downsampler)."""
        return self.frontend.sample_rate / self.samples_per_frame

    @property
    def bitrate(self) -> float:
        """Bits per second: frame_rate x sum(log2 K_i)."""
        return self.frame_rate * self.quantizer.bits_per_frame


@dataclass
class CodesBatch:
    """Codes of a batch of clips.

    Attributes:
        codes: (B, T, K) int64, -1 past each clip's length.
        lengths: (B,) valid frames per clip.
    """

    codes: torch.Tensor
    lengths: torch.Tensor

    def unbatch(self) -> list[torch.Tensor]:
        """One (T_b, K) tensor per clip."""
        return [self.codes[b, : int(n)] for b, n in enumerate(self.lengths)]


@dataclass
class TokenizerOutput:
    """Everything a training step needs from one forward pass.

    Attributes:
        mel: (B, M, F) target log-mel; mel_lengths (B,).
        decoded: the decoder's reconstruction, (B, M, 8T) with its lengths.
        quantized: (B, T, dim_q) quantized frames (gradients reach the encoder through the rotation trick).
        codes: (B, T, K) codes (-1 on padding); code_lengths (B,).
        commitment: (K,) commitment loss per level.
    """

    mel: torch.Tensor
    mel_lengths: torch.Tensor
    decoded: DecoderOutput
    quantized: torch.Tensor
    codes: torch.Tensor
    code_lengths: torch.Tensor
    commitment: torch.Tensor


class AudioTokenizer(nn.Module):
    """Whisper encoder + residual conv downsampler + residual VQ, with a symmetric mel decoder.

    Args:
        cfg: the architecture.
        whisper_config: rebuild this Whisper encoder architecture instead of loading ``cfg.encoder.pretrained_path``
            (used by :meth:`from_pretrained`, whose weights file holds the encoder).
    """

    def __init__(self, cfg: AudioTokenizerConfig, whisper_config=None):
        super().__init__()
        self.cfg = cfg
        self.frontend = WhisperFrontend(cfg.frontend)
        self.encoder = WhisperAudioEncoder(cfg.encoder, cfg.frontend.n_mels, whisper_config)
        chunk_mel_frames = round(cfg.chunk_seconds * cfg.frontend.sample_rate) // cfg.frontend.hop_length
        if chunk_mel_frames > self.encoder.max_frames:
            raise ValueError(f"chunk_seconds: {cfg.chunk_seconds} s is longer than the Whisper encoder's window "
                             f"({self.encoder.max_frames} mel frames)")
        self.downsampler = ConvDownsampler(self.encoder.dim, cfg.downsampler)
        self.pre_quant = nn.Linear(cfg.downsampler.dim, cfg.quantizer.dim)
        self.quantizer = ResidualQuantizer(cfg.quantizer)
        self.decoder = MelDecoder(cfg.decoder, cfg.quantizer.dim, cfg.frontend.n_mels)

    # ---- facts other components read --------------------------------------------------

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Entries of each level's codebook."""
        return self.quantizer.codebook_sizes

    @property
    def num_codebooks(self) -> int:
        """Levels per frame (8 in the design)."""
        return len(self.codebook_sizes)

    @property
    def frame_rate(self) -> float:
        """Token frames per second (12.5)."""
        return self.cfg.frame_rate

    @property
    def sample_rate(self) -> int:
        """Rate the model works at; ``encode`` resamples other rates to it."""
        return self.cfg.frontend.sample_rate

    @property
    def samples_per_frame(self) -> int:
        """Samples per token frame at :attr:`sample_rate` (1280 = 80 ms)."""
        return self.cfg.samples_per_frame

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes."""
        return self.cfg.bitrate

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.pre_quant.weight.device

    def num_frames(self, num_samples: int) -> int:
        """Code frames :meth:`encode` returns for ``num_samples`` samples at :attr:`sample_rate`."""
        window = self._window_samples
        full, rest = divmod(int(num_samples), window)
        frames = full * (window // self.samples_per_frame)
        if rest:
            rest = max(rest, self.samples_per_frame)
            frames += math.ceil((rest // self.cfg.frontend.hop_length) / (2 * self.cfg.downsampler.factor))
        return frames

    @property
    def _window_samples(self) -> int:
        return round(self.cfg.chunk_seconds * self.sample_rate)

    # ---- training forward ---------------------------------------------------------------

    def quantize(self, wav: torch.Tensor, lengths: torch.Tensor,
                 mel_augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Waveforms (B, S) of at most ``chunk_seconds`` -> mel features, code-rate vectors and their mask.

        ``mel_augment(mel (B, M, F), lengths (B,)) -> mel`` alters the encoder's input only (training: SpecAugment);
        the returned features keep the clean mel, the reconstruction target.

        Returns:
            (features, z (B, T, dim_q), code_lengths (B,)) where features is the front end's MelFeatures.
        """
        feats = self.frontend(wav, lengths)  # mel (B, M, F)
        mel_in = mel_augment(feats.mel, feats.lengths) if mel_augment is not None else feats.mel
        hidden, lengths50 = self.encoder(mel_in, feats.lengths)  # (B, F/2, D)
        down, code_lengths = self.downsampler(hidden, lengths50)  # (B, T, C)
        return feats, self.pre_quant(down), code_lengths

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor,
                mel_augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> TokenizerOutput:
        """Encode, quantize and decode a padded batch of waveforms (B, S) at :attr:`sample_rate` (``mel_augment``:
        see :meth:`quantize`)."""
        feats, z, code_lengths = self.quantize(wav, lengths, mel_augment)
        mask = torch.arange(z.shape[1], device=z.device)[None, :] < code_lengths[:, None]  # (B, T)
        q = self.quantizer(z, mask)
        decoded = self.decoder(q.quantized, code_lengths)
        return TokenizerOutput(feats.mel, feats.lengths, decoded, q.quantized, q.codes, code_lengths, q.commitment)

    # ---- inference ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode (no codebook updates, no dropout) and no autograd; restores the training flag.

        Raises:
            RuntimeError: the codebooks were never initialised (k-means runs on the first *training* batch;
                encoding with an untrained quantizer would silently initialise it from the input).
        """
        if not self.quantizer.initialised:
            raise RuntimeError("the quantizer's codebooks are not initialised yet (k-means init runs on the first "
                               "training batch): train the tokenizer or load a trained one")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def encode(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Codes of one clip.

        Args:
            wav: (S,), (S, C) or (C, S) float or int16/int32 samples at ``sample_rate``; downmixed and resampled.
            sample_rate: its rate in Hz.

        Returns:
            LongTensor (T, K) on the CPU, T = :meth:`num_frames` of the resampled clip.

        Raises:
            AudioError: empty, NaN/Inf, unreadable layout, or shorter than one frame.
        """
        return self.encode_many([wav], sample_rate)[0]

    def encode_many(self, wavs: Sequence[np.ndarray | torch.Tensor], sample_rate: int, batch_size: int = 16) -> list[torch.Tensor]:
        """Codes of several clips (any lengths), batched by similar length. Same result as :meth:`encode` on each."""
        clips = [prepare_waveform(w, sample_rate, self.sample_rate, self.samples_per_frame) for w in wavs]
        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
        out: list[torch.Tensor | None] = [None] * len(clips)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            wav, lengths = pad_batch([clips[i] for i in idx])
            for i, codes in zip(idx, self.encode_batch(wav, lengths).unbatch()):
                out[i] = codes.cpu()
        return out  # type: ignore[return-value]

    def encode_batch(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> CodesBatch:
        """Codes of a padded batch of mono waveforms already at :attr:`sample_rate`.

        Args:
            wav: (B, S) float waveforms; lengths (B,) valid samples (None: all S). Each clip needs at least
                one frame (:attr:`samples_per_frame` samples).

        Returns:
            CodesBatch with codes (B, T, K) (-1 padding) on the model's device.
        """
        if wav.dim() != 2:
            raise ValueError(f"expected waveforms of shape (B, S), got {tuple(wav.shape)}")
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long)
        lengths = lengths.long().cpu()
        if int(lengths.min()) < self.samples_per_frame:
            raise ValueError(f"every clip needs at least {self.samples_per_frame} samples (one frame), "
                             f"got {int(lengths.min())}")
        window = self._window_samples
        with self._inference():
            if int(lengths.max()) <= window:
                return self._encode_padded(wav.to(self.device), lengths.to(self.device))
            # long clips: encode each window of each clip as its own row, then concatenate per clip
            pieces, owners = [], []
            for b, n in enumerate(lengths.tolist()):
                for start in range(0, n, window):
                    piece = wav[b, start:min(start + window, n)]
                    if len(piece) < self.samples_per_frame:
                        piece = torch.nn.functional.pad(piece, (0, self.samples_per_frame - len(piece)))
                    pieces.append(piece)
                    owners.append(b)
            codes: list[list[torch.Tensor]] = [[] for _ in range(wav.shape[0])]
            for start in range(0, len(pieces), max(1, wav.shape[0])):
                chunk, chunk_lengths = pad_batch(pieces[start:start + wav.shape[0]])
                enc = self._encode_padded(chunk.to(self.device), chunk_lengths.to(self.device))
                for owner, c in zip(owners[start:start + wav.shape[0]], enc.unbatch()):
                    codes[owner].append(c)
            return pad_codes([torch.cat(c) for c in codes])

    def _encode_padded(self, wav: torch.Tensor, lengths: torch.Tensor) -> CodesBatch:
        _, z, code_lengths = self.quantize(wav, lengths)
        mask = torch.arange(z.shape[1], device=z.device)[None, :] < code_lengths[:, None]  # (B, T)
        return CodesBatch(self.quantizer(z, mask).codes, code_lengths)

    def decode(self, codes: torch.Tensor, mel_frames: int | None = None) -> torch.Tensor:
        """Log-mel of one clip's codes.

        Args:
            codes: (T, K) integer codes.
            mel_frames: cut the result to this many frames (the source clip's ``samples // hop``); None keeps 8T.

        Returns:
            (n_mels, 8T) float mel (or ``mel_frames`` frames), Whisper-normalised, on the CPU.
        """
        if codes.dim() != 2 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"expected codes of shape (T, {self.num_codebooks}), got {tuple(codes.shape)}")
        if codes.shape[0] == 0:
            raise ValueError("cannot decode 0 frames")
        out = self.decode_batch(codes[None], torch.tensor([codes.shape[0]]))
        mel = out.mel[0].cpu()
        return mel[:, :mel_frames] if mel_frames is not None else mel

    def decode_batch(self, codes: torch.Tensor, lengths: torch.Tensor | None = None) -> DecoderOutput:
        """Decode padded codes (B, T, K) with lengths (B,) -> DecoderOutput (mel (B, n_mels, 8T))."""
        if lengths is None:
            lengths = torch.full((codes.shape[0],), codes.shape[1], dtype=torch.long)
        with self._inference():
            codes = codes.to(self.device).long()
            lengths = lengths.to(self.device)
            mask = torch.arange(codes.shape[1], device=codes.device)[None, :] < lengths[:, None]  # (B, T)
            codes = codes.masked_fill(~mask[..., None], -1)
            quantized = self.quantizer.decode_codes(codes)  # (B, T, dim_q)
            return self.decoder(quantized, lengths)

    # ---- persistence --------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike, extra: Callable[[Path], object] | None = None) -> Path:
        """Write ``config.json``, ``whisper_config.json``, ``model.safetensors`` and the matching
        ``preprocessor_config.json`` (a ``WhisperFeatureExtractor``) atomically to directory ``path``.

        The saved tokenizer is self-contained: loading it needs neither the original Whisper directory nor the LM.
        ``extra(tmp_dir)`` may write more (the training run's CTC head) into the directory before it is renamed
        into place, so a reader sees all of it or none.
        """
        from safetensors.torch import save_model

        from omni.integrity import write_checksums

        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        data = to_data(self.cfg)
        data["encoder"]["pretrained_path"] = None  # the weights file holds the encoder
        (tmp / CONFIG_FILE).write_text(json.dumps({"kind": "audio_tokenizer", **data}, indent=2) + "\n")
        self.encoder.whisper.config.to_json_file(str(tmp / WHISPER_CONFIG_FILE))
        self.cfg.frontend.feature_extractor().save_pretrained(str(tmp))
        save_model(self, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "kind": "audio_tokenizer"})
        write_checksums(tmp)
        if extra is not None:
            extra(tmp)
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> AudioTokenizer:
        """Load a tokenizer written by :meth:`save_pretrained` (local directory only), in eval mode.

        Raises:
            FileNotFoundError: the directory or one of its files is missing.
            ValueError: a config that does not validate, or weights that do not fit it.
        """
        from safetensors.torch import load_model
        from transformers import WhisperConfig

        from omni.integrity import verify_checksums

        path = Path(path)
        for name in (CONFIG_FILE, WHISPER_CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path}: not a saved audio tokenizer ({name} missing; write one with "
                                        "'omni train tokenizer' or AudioTokenizer.save_pretrained)")
        verify_checksums(path)
        data = json.loads((path / CONFIG_FILE).read_text())
        data.pop("kind", None)
        cfg = from_data(AudioTokenizerConfig, data, source=str(path / CONFIG_FILE))
        model = cls(cfg, whisper_config=WhisperConfig.from_json_file(str(path / WHISPER_CONFIG_FILE)))
        missing, unexpected = load_model(model, str(path / WEIGHTS_FILE), strict=False)
        if missing or unexpected:
            raise ValueError(f"{path / WEIGHTS_FILE}: weights do not fit the config "
                             f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
        return model.to(device).eval()


def pad_batch(clips: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waveforms with zeros: -> (B, S_max) float32, lengths (B,)."""
    tensors = [torch.as_tensor(c, dtype=torch.float32) for c in clips]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True), lengths


def pad_codes(codes: Sequence[torch.Tensor]) -> CodesBatch:
    """Right-pad (T_b, K) code tensors with -1: -> CodesBatch (B, T_max, K)."""
    lengths = torch.tensor([len(c) for c in codes], dtype=torch.long)
    return CodesBatch(torch.nn.utils.rnn.pad_sequence(list(codes), batch_first=True, padding_value=-1), lengths)
