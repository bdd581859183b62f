"""Voices a reply can be spoken in: the checkpoint's named speakers and speaker-embedding files.

* a speaker name of the flow decoder's table (``bundle.yaml`` lists those offered), e.g. ``flite:rms``;
* ``NAME.npy`` / ``NAME.safetensors`` in ``voice_dir``: a (speaker_dim,) float vector (an external
  speaker embedding, as the flow decoder accepts at synthesis).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from serve.errors import UnknownVoice


def _read_vector(path: Path, dim: int) -> torch.Tensor:
    try:
        if path.suffix == ".npy":
            vec = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if len(tensors) != 1:
                raise ValueError(f"holds {len(tensors)} tensors, expected one")
            vec = next(iter(tensors.values()))
    except Exception as e:  # unreadable file of any kind
        raise ValueError(f"{path}: cannot read speaker embedding: {e}") from None
    vec = vec.float().flatten()
    if vec.numel() != dim or not bool(torch.isfinite(vec).all()):
        raise ValueError(f"{path}: a speaker embedding must be {dim} finite floats, got {vec.numel()} values")
    return vec


class VoiceBook:
    """Names -> what the speech decoder takes as ``speaker`` (a name or a vector).

    Args:
        speakers: named speakers offered by the bundle (first = default).
        speaker_dim: the flow decoder's speaker embedding width (0: no speaker conditioning).
        voice_dir: optional directory of embedding files.

    Raises:
        ValueError / FileNotFoundError: an unreadable voice directory or file (at start).
    """

    def __init__(self, speakers: list[str], speaker_dim: int, voice_dir: str | None = None):
        self.speakers = list(speakers)
        self.vectors: dict[str, torch.Tensor] = {}
        if voice_dir:
            d = Path(voice_dir)
            if not d.is_dir():
                raise FileNotFoundError(f"voice_dir: {d}: directory not found")
            if speaker_dim == 0:
                raise ValueError(f"voice_dir: {d}: the checkpoint's flow decoder takes no speaker embeddings")
            for f in sorted([*d.glob("*.npy"), *d.glob("*.safetensors")]):
                self.vectors[f.stem] = _read_vector(f, speaker_dim)

    def names(self) -> list[str]:
        return [*self.speakers, *(n for n in self.vectors if n not in self.speakers)]

    def default(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def resolve(self, name: str | None) -> str | torch.Tensor | None:
        """The decoder's ``speaker`` for a voice name (None: the default voice)."""
        if name is None or name == "":
            name = self.default()
            if name is None:
                return None
        if name in self.speakers:
            return name
        if name in self.vectors:
            return self.vectors[name]
        raise UnknownVoice(f"unknown voice '{name}'; available voices: {', '.join(self.names()) or '(none)'}")
