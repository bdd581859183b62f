"""Decode steps on static KV caches, optionally compiled (CUDA graphs on a GPU).

A decode step of a small batch is launch-bound on a GPU: a few hundred tiny kernels, each waiting on the host.
Fixed shapes let ``torch.compile(mode="reduce-overhead")`` record the step once as a CUDA graph and replay it.
This module gives the two decode steps of :func:`~omni.model.generation.decode_steps` fixed shapes:

* :class:`StaticLLM`: the backbone on ``transformers``' ``StaticCache`` of ``max_len`` positions. The prompt
  is prefilled eagerly (its length varies); each one-position step then sees the same shapes every time:
  embeddings (B, 1, D), position ids (B, 1) and the whole (B, max_len) attention-mask buffer, whose next
  column is set to 1 before the step (future columns are 0, so the zero keys beyond the cache's length are
  never attended).
* :class:`StaticDepth`: the depth transformer's K levels on a static cache of K positions; every level is
  the same fixed-shape call of the decoder layers (its rotary table, position and additive mask over the
  K cache slots are inputs), followed by the level's own output head.

The same object serves many calls: its cache is reset, not reallocated, so a recorded CUDA graph keeps its
buffer addresses. :func:`static_llm` / :func:`static_depth` lend one per (model, batch size, length bucket)
from a pool outside the model (decoding state never lives in the module), one generation at a time
(concurrent ones get their own); lengths are rounded up to a power of two (>= 256) so a server compiles
for a handful of buckets, not for every prompt length.

torch keeps recorded CUDA graphs per thread (``torch._inductor.cudagraph_trees``): the compiled code is shared,
but a generation in a new thread records its graphs again (a warm-up step and a recording step, then replays).
The server, which starts a thread per reply, pays that once per reply; a decode thread kept per slot would not.

Without compilation (``compile="off"``) the static path is the dynamic one on preallocated buffers: the same
tokens, logits equal to float rounding (tests check both, and that each step compiles as one graph).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from transformers import StaticCache

from omni.model.backbone import LAST_HIDDEN_STATE

if TYPE_CHECKING:
    from omni.model.audio_head import AudioHead, CodePicker

#: ``off``: plain eager calls; ``trace``: one dynamo graph run eagerly (checks the step compiles whole, no
#: speed-up; for tests and debugging); otherwise a ``torch.compile`` mode (``reduce-overhead`` = CUDA graphs).
CompileMode = Literal["off", "trace", "default", "reduce-overhead", "max-autotune"]

#: Idle decoders kept per model (least recently used dropped first; keyed by batch size, length bucket, mode,
#: device, dtype and inference mode); each holds a KV cache of its full length, so a server keeps at most two
#: idle (a 7B model, 16 rows x 4096 positions: ~7.5 GB each).
KEEP = 2


def length_bucket(n: int, smallest: int = 256) -> int:
    """The cache length for ``n`` positions: the next power of two, at least ``smallest``."""
    size = smallest
    while size < n:
        size *= 2
    return size


def compiled(fn: Callable, mode: CompileMode) -> Callable:
    """``fn`` as a whole-graph compiled function (``mode`` as in :data:`CompileMode`), or itself for ``off``."""
    if mode == "off":
        return fn
    if mode == "trace":  # fullgraph: a graph break is an error
        return torch.compile(fn, backend="eager", fullgraph=True, dynamic=False)
    # not fullgraph: past dynamo's recompile limit (many batch sizes in a long-lived server) the step falls
    # back to eager instead of failing
    return torch.compile(fn, mode=mode, dynamic=False)


#: Modes whose compiled steps replay CUDA graphs: a replay overwrites the previous one's outputs.
GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _graph_call(mode: CompileMode, fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]], *args: torch.Tensor):
    """``fn(*args)``; under CUDA graphs a new step is marked first and the outputs are copied out of the graph's
    buffers (the next replay overwrites them). Elsewhere the outputs are returned as they are (no copy)."""
    if mode not in GRAPH_MODES:
        return fn(*args)
    torch.compiler.cudagraph_mark_step_begin()
    out = fn(*args)
    return tuple(t.clone() for t in out) if isinstance(out, tuple) else out.clone()


class StaticLLM:
    """The backbone's prefill and one-position steps on a static KV cache.

    Args:
        backbone: the ``transformers`` causal LM.
        batch_size: rows B.
        max_len: positions the cache holds (prompt + generated).
        mode: compilation of the one-position step (:data:`CompileMode`).
    """

    def __init__(self, backbone: torch.nn.Module, batch_size: int, max_len: int, mode: CompileMode = "off"):
        self.backbone = backbone
        self.max_len = max_len
        self.mode = mode
        device = backbone.get_input_embeddings().weight.device
        self.cache = StaticCache(config=backbone.config, max_cache_len=max_len)
        self.mask = torch.zeros(batch_size, max_len, dtype=torch.long, device=device)  # (B, L) attention mask
        self.length = 0
        self._step = compiled(self._forward, mode)

    def _forward(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                            past_key_values=self.cache, use_cache=True, output_hidden_states=LAST_HIDDEN_STATE,
                            logits_to_keep=1)
        return out.hidden_states[-1][:, -1], out.logits[:, -1]

    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reset the cache and run the prompt (eagerly).

        Args:
            embeds: (B, T, D) prompt embeddings; mask: (B, T) its attention mask; positions: (B, T).

        Returns:
            (last hidden state (B, D), last text logits (B, V)).
        """
        t = embeds.shape[1]
        if t >= self.max_len:
            raise ValueError(f"prompt of {t} positions does not fit a static cache of {self.max_len}")
        self.cache.reset()
        self.mask.zero_()
        self.mask[:, :t] = mask
        self.length = t
        return self._forward(embeds, positions, self.mask)

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One generated position per row: embeds (B, 1, D), positions (B, 1) -> ((B, D), (B, V)), fresh tensors."""
        if self.length >= self.max_len:
            raise ValueError(f"static cache full ({self.max_len} positions)")
        self.mask[:, self.length] = 1
        self.length += 1
        return _graph_call(self.mode, self._step, embeds, positions, self.mask)


class StaticDepth:
    """The depth transformer's K cached levels on a static cache (see :meth:`AudioHead.generate`).

    Args:
        head: the audio head (its transformer must have the Llama/Qwen-style ``layers``/``rotary_emb``/``norm``).
        batch_size: rows B.
        mode: compilation of each level's step (:data:`CompileMode`).
    """

    def __init__(self, head: AudioHead, batch_size: int, mode: CompileMode = "off"):
        self.head = head
        self.mode = mode
        tr = head.transformer
        k = head.num_codebooks
        weight = head.in_proj.weight
        self.cache = StaticCache(config=tr.config, max_cache_len=k)
        c = tr.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        # allocated now, not on the first update inside a traced step (which would then be traced twice)
        self.cache.early_initialization(batch_size, c.num_key_value_heads, head_dim, weight.dtype, weight.device)
        positions = torch.arange(k, device=weight.device).unsqueeze(0)  # (1, K)
        cos, sin = tr.rotary_emb(weight.new_zeros(1, 1, 1), positions)  # (1, K, head_dim) each
        self.rope = [(cos[:, i:i + 1].contiguous(), sin[:, i:i + 1].contiguous()) for i in range(k)]
        allowed = torch.arange(k, device=weight.device)[None, :] <= torch.arange(k, device=weight.device)[:, None]
        additive = torch.zeros(k, k, dtype=weight.dtype, device=weight.device)
        additive = additive.masked_fill(~allowed, torch.finfo(weight.dtype).min)  # (K, K): level k sees 0..k
        self.masks = [additive[i].view(1, 1, 1, k).clone() for i in range(k)]  # (1, 1, 1, K) each
        self.positions = [positions[:, i:i + 1].clone() for i in range(k)]  # (1, 1) each
        self._layers = compiled(self._layers_fn, mode)  # one graph for every level: its inputs are tensors

    def _layers_fn(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                   position: torch.Tensor) -> torch.Tensor:
        """One level through the decoder layers: h (B, 1, d) -> normed hidden state (B, d)."""
        tr = self.head.transformer
        for layer in tr.layers[:tr.config.num_hidden_layers]:
            h = layer(h, attention_mask=mask, position_ids=position, past_key_values=self.cache, use_cache=True,
                      position_embeddings=(cos, sin))
        return tr.norm(h)[:, -1]

    def generate(self, x: torch.Tensor, pick: CodePicker) -> torch.Tensor:
        """x: (B, 1, d) the projected LLM hidden state -> (B, K) long codes."""
        self.cache.reset()
        step_in, codes = x, []
        k = self.head.num_codebooks
        for level, head in enumerate(self.head.heads):
            h = _graph_call(self.mode, self._layers, step_in, *self.rope[level], self.masks[level],
                            self.positions[level])  # (B, d)
            code = pick(level, head(h))  # logits (B, V_level) -> (B,)
            codes.append(code)
            if level + 1 < k:
                step_in = self.head.code_embeds[level](code).unsqueeze(1)  # (B, 1, d)
        return torch.stack(codes, dim=-1)  # (B, K)


@dataclass
class _Kept:
    key: tuple
    decoder: StaticLLM | StaticDepth
    busy: bool


class DecoderPool:
    """Decoders kept per model module and key, each lent to one generation at a time.

    Concurrent generations (a server's slots, each in its own thread) never share a cache: a busy decoder is
    not lent again, and a second one is made for the same key. Idle ones beyond :data:`KEEP` per module are
    dropped, least recently used first.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @contextmanager
    def use(self, owner: torch.nn.Module, key: tuple, make: Callable[[], StaticLLM | StaticDepth]) -> Iterator:
        with self._lock:
            kept: list[_Kept] = self._kept.setdefault(owner, [])  # least recently used first
            entry = next((e for e in kept if e.key == key and not e.busy), None)
            if entry is None:
                entry = _Kept(key, make(), True)
            else:
                kept.remove(entry)
                entry.busy = True
            kept.append(entry)
            idle = [e for e in kept if not e.busy]
            while len(kept) > KEEP and idle:
                kept.remove(idle.pop(0))
        try:
            yield entry.decoder
        finally:
            with self._lock:
                entry.busy = False

    def kept(self, owner: torch.nn.Module) -> list[tuple[tuple, StaticLLM | StaticDepth]]:
        """(key, decoder) of the decoders kept for ``owner``, least recently used first."""
        with self._lock:
            return [(e.key, e.decoder) for e in self._kept.get(owner, [])]


POOL = DecoderPool()


def _inference() -> bool:
    """Part of a decoder's key: caches made under ``torch.inference_mode`` (the server's threads) are inference
    tensors, which no in-place update outside that mode may touch."""
    return torch.is_inference_mode_enabled()


def static_llm(backbone: torch.nn.Module, batch_size: int, needed: int, mode: CompileMode):
    """Context manager lending a kept :class:`StaticLLM` for ``batch_size`` rows and >= ``needed`` positions."""
    max_len = length_bucket(needed)
    weight = backbone.get_input_embeddings().weight
    return POOL.use(backbone, (batch_size, max_len, mode, weight.device, weight.dtype, _inference()),
                    lambda: StaticLLM(backbone, batch_size, max_len, mode))


def static_depth(head: AudioHead, batch_size: int, mode: CompileMode):
    """Context manager lending a kept :class:`StaticDepth` for ``batch_size`` rows."""
    weight = head.in_proj.weight
    return POOL.use(head, (batch_size, mode, weight.device, weight.dtype, _inference()),
                    lambda: StaticDepth(head, batch_size, mode))
