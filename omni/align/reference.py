"""The reference model of DPO-style losses: a frozen copy, the policy with its LoRA adapters disabled, or
reference log-probs precomputed once and cached to disk.

* :class:`FrozenReference`: a deep copy of the starting policy, frozen, in eval mode (memory: one more model).
* :class:`AdapterReference`: when the policy trains LoRA adapters (peft) on a frozen backbone, the reference is
  the same model inside ``with backbone.disable_adapter()`` (no extra memory), as TRL does.
* :class:`CachedReference`: the reference log-probs of every (pair id, response) computed once before training
  (:func:`precompute_reference`) and written to a safetensors file keyed by id, with a fingerprint of the
  reference weights and of the data; a later run (or a resume) reads them back, and a changed model or data set
  recomputes them. Training then costs one policy forward + backward per step, like SFT.

``logps`` returns the summed response log-probs (2B,) of a :class:`~omni.align.data.PreferenceBatch`
in its row order.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from omni.align.logps import response_logprobs
from omni.config import check, option

CACHE_FORMAT = "omni-reference-logps-v1"


@dataclass
class ReferenceConfig:
    """Where the reference log-probs come from."""

    mode: Literal["copy", "adapters", "cached", "none"] = option(
        "copy", help="copy: a frozen copy of the starting policy; adapters: the policy with its LoRA adapters "
        "disabled (needs lora); cached: log-probs of the starting policy precomputed once and read from disk; "
        "none: reference-free losses (simpo, orpo).")
    cache: str | None = option(None, help="cached: the cache file (default: <output_dir>/reference_logps.safetensors).")
    batch_size: int = option(8, help="Pairs per batch when precomputing the cache.")

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", "must be >= 1")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


class FrozenReference:
    """A frozen deep copy of ``model`` (made before training starts)."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(_unwrap(model)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def to(self, device: torch.device | str) -> FrozenReference:
        self.model.to(device)
        return self

    @torch.no_grad()
    def logps(self, policy: nn.Module, batch: Any) -> torch.Tensor:
        out = self.model(batch.model, return_loss=False)
        return response_logprobs(out, batch.model).sum


class AdapterReference:
    """The policy itself with its peft LoRA adapters disabled (the backbone is a ``peft.PeftModel``)."""

    @torch.no_grad()
    def logps(self, policy: nn.Module, batch: Any) -> torch.Tensor:
        model = _unwrap(policy)
        if not hasattr(model.backbone, "disable_adapter"):
            raise ValueError("reference.mode 'adapters' needs a policy with LoRA adapters (set lora:)")
        with model.backbone.disable_adapter():
            out = model(batch.model, return_loss=False)
        return response_logprobs(out, batch.model).sum


class CachedReference:
    """Reference log-probs read from the batch (the collator looked them up in a :class:`ReferenceCache`)."""

    def logps(self, policy: nn.Module, batch: Any) -> torch.Tensor:
        if batch.ref_logps is None:
            raise ValueError("reference.mode 'cached' but the batch carries no cached reference log-probs")
        return batch.ref_logps


# ------------------------------------------------------------------------------------------------ cache
class ReferenceCache:
    """Cached reference log-probs: id -> (chosen, rejected) summed log-probs.

    File layout (safetensors): tensor ``logps`` (N, 2) float32; metadata ``format``, ``fingerprint`` and
    ``ids`` (a JSON list, row i of ``logps`` belongs to ``ids[i]``).
    """

    def __init__(self, ids: Sequence[str], logps: torch.Tensor, fingerprint: str):
        if logps.shape != (len(ids), 2):
            raise ValueError(f"reference cache: {len(ids)} ids but logps of shape {tuple(logps.shape)}")
        self.index = {k: i for i, k in enumerate(ids)}
        self.logps = logps.float()
        self.fingerprint = fingerprint

    def lookup(self, ids: Sequence[str]) -> torch.Tensor:
        """(2B,) ``[chosen of ids..., rejected of ids...]`` (the batch's row order).

        Raises:
            KeyError: an id the cache does not hold (the data changed without a new fingerprint).
        """
        try:
            rows = torch.tensor([self.index[k] for k in ids], dtype=torch.long)
        except KeyError as e:
            raise KeyError(f"reference cache: no log-probs for pair {e.args[0]!r}; delete the cache to recompute") from None
        sel = self.logps[rows]  # (B, 2)
        return torch.cat([sel[:, 0], sel[:, 1]])

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = sorted(self.index, key=self.index.get)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"logps": self.logps.contiguous()}, str(tmp),
                  metadata={"format": CACHE_FORMAT, "fingerprint": self.fingerprint, "ids": json.dumps(ids)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceCache:
        """Read a cache file.

        Raises:
            ValueError: not a reference cache (names the file).
        """
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                logps = f.get_tensor("logps")
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"{path}: not a readable reference cache ({e})") from None
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path}: not a reference cache (format {meta.get('format')!r}, expected {CACHE_FORMAT})")
        return cls(json.loads(meta["ids"]), logps, meta["fingerprint"])


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over every tensor of the model's state dict (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(_unwrap(model).state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_fingerprint(manifests: Sequence[str], settings: dict[str, Any]) -> str:
    """sha256 over the manifests' bytes and the settings that change how rows are encoded."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for m in manifests:
        h.update(str(m).encode())
        with open(m, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def compute_reference_logps(model: nn.Module, dataset: Any, collate: Any, indices: Sequence[int], batch_size: int,
                            device: torch.device | str, autocast: Any = None) -> tuple[list[str], torch.Tensor]:
    """Summed response log-probs (N, 2) of the pairs ``dataset[i]`` for ``i`` in ``indices``, under ``model``."""
    ids: list[str] = []
    out: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(indices), batch_size):
            items = [dataset[i] for i in indices[start:start + batch_size]]
            batch = collate(items)
            with autocast() if autocast is not None else contextlib.nullcontext():
                res = model(batch.model.to(device), return_loss=False)
            lp = response_logprobs(res, batch.model.to(device)).sum.float().cpu()  # (2B,)
            b = len(items)
            out.append(torch.stack([lp[:b], lp[b:]], dim=-1))  # (B, 2)
            ids += batch.ids
    finally:
        model.train(was_training)
    return ids, torch.cat(out) if out else torch.zeros(0, 2)


def precompute_reference(model: nn.Module, datasets: Sequence[Any], collate: Any, path: str | os.PathLike,
                         fingerprint: str, batch_size: int, log: Any = print) -> ReferenceCache:
    """The reference cache for ``datasets`` (training and dev pairs): read from ``path`` when its fingerprint
    matches, else computed (each process a share, gathered), written by the main process and read back.
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    path = Path(path)
    if path.is_file():
        cache = ReferenceCache.load(path)
        if cache.fingerprint == fingerprint:
            log(f"reference log-probs: read {len(cache.index)} pairs from {path}")
            return cache
        log(f"reference log-probs: {path} was made for another model or data set; recomputing")
    keys = [(d, i) for d, ds in enumerate(datasets) for i in range(len(ds))]
    mine = keys[state.process_index::state.num_processes]
    ids: list[str] = []
    parts = []
    for d, ds in enumerate(datasets):
        idx = [i for dd, i in mine if dd == d]
        got_ids, lp = compute_reference_logps(model, ds, collate, idx, batch_size, state.device)
        ids += got_ids
        parts.append(lp)
    local = [(k, v.tolist()) for k, v in zip(ids, torch.cat(parts))]
    merged = gather_object(local) if state.num_processes > 1 else local
    table = dict(merged)
    cache = ReferenceCache(list(table), torch.tensor(list(table.values()), dtype=torch.float32).reshape(-1, 2), fingerprint)
    if state.is_main_process:
        cache.save(path)
        log(f"reference log-probs: computed {len(table)} pairs, saved to {path}")
    state.wait_for_everyone()
    return cache
