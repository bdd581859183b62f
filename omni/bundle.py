"""A checkpoint bundle: every model a speech-in / speech-out assistant needs, in one directory.

Serving (``omni serve --checkpoint DIR``) and evaluation (``omni eval ... --checkpoint DIR``)
load the same layout::

    DIR/
      bundle.yaml          kind: bundle — relative paths below + decoding settings
      model/               OmniModel.save_pretrained (LLM, vision, audio embedding/head, text tokenizer)
      audio_tokenizer/     AudioTokenizer.save_pretrained (speech -> codes)
      flow/                FlowDecoder.save_pretrained (codes -> mel)
      vocoder/             HiFiGANVocoder.save_pretrained (mel -> waveform)

``assemble_bundle`` copies trained component directories into this layout;
``tiny_bundle`` writes one with randomly initialised tiny components (tests,
demos of the plumbing); ``load_bundle`` loads everything once, from local
paths only, checking that the components agree (codebook sizes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from omni.config import check, load_config, option, save_config


@dataclass
class BundleConfig:
    """Where a bundle's components live (relative to the bundle directory) and how speech is decoded."""

    model_dir: str = option("model", help="OmniModel directory (save_pretrained), relative to the bundle.")
    audio_tokenizer_dir: str = option("audio_tokenizer", help="AudioTokenizer directory, relative to the bundle.")
    flow_dir: str = option("flow", help="Flow-matching decoder directory, relative to the bundle.")
    vocoder_dir: str = option("vocoder", help="Vocoder directory, relative to the bundle.")
    decoder: dict = option(
        default_factory=dict,
        help="SpeechDecoderConfig overrides for synthesis and streaming (n_steps, chunk_tokens, speaker, ...); "
        "its flow_dir / vocoder_dir are taken from this bundle.",
    )
    voices: list[str] = option(
        default_factory=list,
        help="Voices offered to users (speaker names of the flow decoder); empty = all of its speakers.",
    )
    description: str = option("", help="Free text: what was trained, on what, when.")

    def __post_init__(self) -> None:
        for name in ("model_dir", "audio_tokenizer_dir", "flow_dir", "vocoder_dir"):
            check(bool(getattr(self, name)), name, "must name a directory")
        check("flow_dir" not in self.decoder and "vocoder_dir" not in self.decoder, "decoder",
              "flow_dir / vocoder_dir are set by the bundle itself")


@dataclass
class OmniBundle:
    """The loaded components.

    Attributes:
        model: the omni LLM (eval mode).
        audio_tokenizer: speech -> codes (T, K).
        speech_decoder: codes -> waveform, whole or streamed.
        config: the bundle's config; path: its directory.
    """

    model: object
    audio_tokenizer: object
    speech_decoder: object
    config: BundleConfig
    path: Path
    voices: list[str] = field(default_factory=list)


def bundle_file(path: str | os.PathLike) -> Path:
    """The bundle.yaml of a bundle directory; FileNotFoundError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: checkpoint directory not found (bundles are never downloaded)")
    config = path / "bundle.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint bundle (no bundle.yaml); build one with 'omni bundle assemble'")
    return config


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> OmniBundle:
    """Load every component of a bundle from local directories.

    Raises:
        FileNotFoundError: a missing directory, naming it.
        ValueError: components that do not fit together (codebook sizes).
    """
    from audio_tokenizer.model import AudioTokenizer
    from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig
    from omni.config import from_data
    from omni.model.model import OmniModel

    path = Path(path)
    cfg = load_config(bundle_file(path), BundleConfig)

    def part(rel: str, what: str) -> Path:
        p = path / rel
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: {what} directory of the bundle not found")
        return p

    model = OmniModel.from_pretrained(part(cfg.model_dir, "model")).to(device).eval()
    tokenizer = AudioTokenizer.from_pretrained(part(cfg.audio_tokenizer_dir, "audio tokenizer"), device=device).eval()
    dec_cfg = from_data(SpeechDecoderConfig, {**cfg.decoder, "flow_dir": str(part(cfg.flow_dir, "flow decoder")),
                                              "vocoder_dir": str(part(cfg.vocoder_dir, "vocoder")),
                                              "device": str(device)}, source=str(path / "bundle.yaml"))
    decoder = SpeechDecoder.from_config(dec_cfg)
    sizes = {"model": list(model.cfg.codebook_sizes), "audio tokenizer": list(tokenizer.codebook_sizes),
             "flow decoder": list(decoder.flow.cfg.codebook_sizes)}
    if len({tuple(v) for v in sizes.values()}) != 1:
        raise ValueError(f"{path}: components disagree on codebook sizes: {sizes}")
    speakers = list(decoder.flow.cfg.speakers)
    unknown = [v for v in cfg.voices if v not in speakers]
    if unknown:
        raise ValueError(f"{path}: voices {unknown} are not speakers of the flow decoder ({speakers})")
    return OmniBundle(model, tokenizer, decoder, cfg, path, voices=cfg.voices or speakers)


def _atomic_dir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _publish(tmp: Path, out: Path, overwrite: bool) -> Path:
    if out.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def assemble_bundle(out: str | os.PathLike, model: str | os.PathLike, audio_tokenizer: str | os.PathLike,
                    flow: str | os.PathLike, vocoder: str | os.PathLike, cfg: BundleConfig | None = None,
                    overwrite: bool = False) -> Path:
    """Copy trained component directories into a new bundle directory (atomically) and validate it by loading."""
    out = Path(out)
    cfg = cfg or BundleConfig()
    tmp = _atomic_dir(out)
    try:
        for src, rel in ((model, cfg.model_dir), (audio_tokenizer, cfg.audio_tokenizer_dir), (flow, cfg.flow_dir),
                         (vocoder, cfg.vocoder_dir)):
            if not Path(src).is_dir():
                raise FileNotFoundError(f"{src}: component directory not found")
            shutil.copytree(src, tmp / rel)
        save_config(cfg, tmp / "bundle.yaml")
        load_bundle(tmp)  # fail before publishing a bundle that does not load
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out, overwrite)


def tiny_bundle(out: str | os.PathLike, seed: int = 0, voices: tuple[str, ...] = ("flite:rms", "espeak:en-us+m1"),
                overwrite: bool = False) -> Path:
    """A bundle of randomly initialised tiny components (about 1 M parameters in all), for tests and plumbing demos."""
    from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig
    from decoders.estimator import EstimatorConfig
    from decoders.flow import FlowDecoder, FlowDecoderConfig
    from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig
    from omni.model.tiny import TINY_CODEBOOKS, tiny_model

    out = Path(out)
    tmp = _atomic_dir(out)
    try:
        sizes = list(TINY_CODEBOOKS)
        model = tiny_model(seed=seed)
        model.save_pretrained(tmp / "model")
        torch.manual_seed(seed)
        tok_cfg = AudioTokenizerConfig()
        tok_cfg = replace(
            tok_cfg,
            encoder=replace(tok_cfg.encoder, d_model=32, layers=2, heads=4, ffn_dim=64),
            downsampler=replace(tok_cfg.downsampler, dim=32),
            quantizer=replace(tok_cfg.quantizer, codebook_sizes=sizes, dim=16),
            decoder=replace(tok_cfg.decoder, upsampler=replace(tok_cfg.decoder.upsampler, dim=32), d_model=32,
                            layers=1, heads=4, ffn_dim=64, postnet_layers=2, postnet_dim=16),
        )
        _init_codebooks(AudioTokenizer(tok_cfg), seed).save_pretrained(tmp / "audio_tokenizer")
        flow = FlowDecoder(FlowDecoderConfig(
            codebook_sizes=sizes, token_dim=32, encoder_layers=1, encoder_heads=4, encoder_window=4, speaker_dim=8,
            speakers=list(voices), estimator=EstimatorConfig(channels=32, n_mid_blocks=1, num_heads=4,
                                                             attention_window=8)))
        flow.save_pretrained(tmp / "flow")
        HiFiGANVocoder(VocoderConfig(generator=GeneratorConfig(
            channels=32, resblock_kernel_sizes=[3, 5], resblock_dilations=[[1, 3], [1, 3]]))).save_pretrained(tmp / "vocoder")
        save_config(BundleConfig(decoder={"n_steps": 2}, voices=list(voices),
                                 description=f"tiny random bundle, seed {seed}: plumbing only, it says nothing useful"),
                    tmp / "bundle.yaml")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out, overwrite)


def _init_codebooks(tokenizer, seed: int):
    """One training-mode forward on noise, so the k-means-initialised codebooks are set (else codes are all 0)."""
    g = torch.Generator().manual_seed(seed)
    wav = 0.1 * torch.randn(4, 24000, generator=g)
    lengths = torch.tensor([24000, 20000, 16000, 12000])
    tokenizer.train()
    with torch.no_grad():
        tokenizer(wav, lengths)
    return tokenizer.eval()
