"""Audio head: a small depth transformer that predicts the K codes of one frame, level after level.

For a frame whose codes are ``c_0 .. c_{K-1}``, the LLM hidden state ``h`` of
the position *before* the frame (the one whose text head predicted the
``<|audio|>`` token) conditions a causal transformer over K steps::

    step:     0            1               2                      K-1
    input:    W_in·h       F_0[c_0]        F_1[c_1]      ...      F_{K-2}[c_{K-2}]
    output:   logits c_0   logits c_1      logits c_2    ...      logits c_{K-1}     (head k: d -> V_k)

Training feeds the true codes (teacher forcing: one pass over K positions);
generation samples level by level with a KV cache (K one-position steps).
The transformer is a ``transformers`` decoder stack (``AutoModel`` of
``model_type``, Qwen2 by default: RMSNorm, SwiGLU, rotary positions over the
K levels) driven with ``inputs_embeds``; its cache is a ``DynamicCache``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, DynamicCache

from omni.config import check, option
from omni.model.static_decode import CompileMode, static_depth


@dataclass
class AudioHeadConfig:
    """Size of the depth transformer."""

    num_layers: int = option(3, help="Transformer layers of the depth transformer (3 in the reference model).")
    hidden_size: int = option(1024, help="Width of the depth transformer.")
    num_heads: int = option(16, help="Attention heads (hidden_size must be divisible by it).")
    intermediate_size: int = option(2816, help="Width of the MLP inside each layer.")
    model_type: str = option("qwen2", help="transformers architecture of the layers (qwen2, llama, ...).")

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "intermediate_size"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.hidden_size % self.num_heads == 0, "num_heads", "must divide hidden_size")
        check((self.hidden_size // self.num_heads) % 2 == 0, "num_heads", "hidden_size / num_heads must be even")


#: Picks the codes of one level from its logits: (level, logits (B, V_k)) -> codes (B,) long.
CodePicker = Callable[[int, torch.Tensor], torch.Tensor]


def greedy_codes(level: int, logits: torch.Tensor) -> torch.Tensor:
    """The most likely code of each row."""
    return logits.argmax(-1)


class AudioHead(nn.Module):
    """Depth transformer + K classification heads.

    Args:
        cfg: transformer size.
        codebook_sizes: V_k for each of the K levels.
        llm_hidden_size: width of the LLM hidden state that conditions it.
    """

    def __init__(self, cfg: AudioHeadConfig, codebook_sizes: list[int], llm_hidden_size: int):
        super().__init__()
        self.codebook_sizes = list(codebook_sizes)
        k = len(self.codebook_sizes)
        hf = AutoConfig.for_model(
            cfg.model_type, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size, vocab_size=1, max_position_embeddings=max(k, 8),
            pad_token_id=None, bos_token_id=None, eos_token_id=None, tie_word_embeddings=False,
        )
        self.transformer = AutoModel.from_config(hf)
        self.transformer.embed_tokens = None  # driven by inputs_embeds only
        self.in_proj = nn.Linear(llm_hidden_size, cfg.hidden_size)
        self.code_embeds = nn.ModuleList(nn.Embedding(v, cfg.hidden_size) for v in self.codebook_sizes[:-1])
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden_size, v) for v in self.codebook_sizes)

    @property
    def num_codebooks(self) -> int:
        return len(self.codebook_sizes)

    def forward(self, hidden: torch.Tensor, codes: torch.Tensor) -> list[torch.Tensor]:
        """Teacher-forced logits of every level.

        Args:
            hidden: (N, D_llm) LLM hidden state before each target frame.
            codes: (N, K) the frames' true codes.

        Returns:
            K tensors, level k: (N, V_k).
        """
        if hidden.shape[0] == 0:
            return [hidden.new_zeros(0, v) for v in self.codebook_sizes]
        x0 = self.in_proj(hidden).unsqueeze(1)  # (N, 1, d)
        prev = [emb(codes[:, k]) for k, emb in enumerate(self.code_embeds)]  # K-1 x (N, d)
        x = torch.cat([x0, torch.stack(prev, dim=1)], dim=1) if prev else x0  # (N, K, d)
        h = self.transformer(inputs_embeds=x, use_cache=False).last_hidden_state  # (N, K, d)
        return [head(h[:, k]) for k, head in enumerate(self.heads)]

    @torch.no_grad()
    def generate(self, hidden: torch.Tensor, pick: CodePicker = greedy_codes, use_cache: bool = True,
                 static: bool = False, compile: CompileMode = "off") -> torch.Tensor:
        """Sample the K codes of one frame per row, level by level.

        Args:
            hidden: (B, D_llm) LLM hidden state that predicted ``<|audio|>``.
            pick: chooses level-k codes from their logits (greedy by default).
            use_cache: K one-position steps with a KV cache; False recomputes the prefix each level
                (same result, for checking the cache).
            static: the cache is a static one of K positions, kept between calls
                (:class:`~omni.model.static_decode.StaticDepth`; needs the Llama/Qwen-style layer stack).
            compile: with ``static``, how each level's step is compiled (``reduce-overhead``: CUDA graphs).

        Returns:
            (B, K) long codes.
        """
        x = self.in_proj(hidden).unsqueeze(1)  # (B, 1, d)
        if use_cache and static and self._layers_callable():
            with static_depth(self, x.shape[0], compile) as depth:
                return depth.generate(x, pick)
        if use_cache and self._layers_callable():
            return self._generate_by_layers(x, pick)
        cache = DynamicCache(config=self.transformer.config) if use_cache else None
        seq, step_in, codes = x, x, []
        for k, head in enumerate(self.heads):
            if use_cache:
                out = self.transformer(inputs_embeds=step_in, past_key_values=cache, use_cache=True)
            else:
                out = self.transformer(inputs_embeds=seq, use_cache=False)
            logits = head(out.last_hidden_state[:, -1])  # (B, V_k)
            code = pick(k, logits)  # (B,)
            codes.append(code)
            if k + 1 < self.num_codebooks:
                step_in = self.code_embeds[k](code).unsqueeze(1)  # (B, 1, d)
                seq = torch.cat([seq, step_in], dim=1)  # (B, k+2, d)
        return torch.stack(codes, dim=-1)  # (B, K)

    def _layers_callable(self) -> bool:
        """Whether the transformer has the decoder-layer stack the direct path drives (Llama / Qwen2 / Qwen3 style)."""
        tr = self.transformer
        return all(hasattr(tr, a) for a in ("layers", "rotary_emb", "norm"))

    def _generate_by_layers(self, x: torch.Tensor, pick: CodePicker) -> torch.Tensor:
        """The cached K steps, calling the ``transformers`` decoder layers directly.

        Same computation as the model's forward with a ``DynamicCache``, without its per-call wrapper
        work (causal-mask building, rotary table, output dataclass), which dominates these one-position
        steps of a small transformer: the rotary embeddings of the K positions are computed once, and no
        mask is needed (each step's single query attends to its whole cached past).

        Args:
            x: (B, 1, d) the projected LLM hidden state (step 0's input).

        Returns:
            (B, K) long codes.
        """
        tr = self.transformer
        cache = DynamicCache(config=tr.config)
        positions = torch.arange(self.num_codebooks, device=x.device).unsqueeze(0)  # (1, K)
        cos, sin = tr.rotary_emb(x, positions)  # (1, K, head_dim) each
        layers = tr.layers[:tr.config.num_hidden_layers]
        step_in, codes = x, []
        for k, head in enumerate(self.heads):
            h = step_in  # (B, 1, d)
            rope = (cos[:, k:k + 1], sin[:, k:k + 1])  # (1, 1, head_dim) each
            for layer in layers:
                h = layer(h, attention_mask=None, position_ids=positions[:, k:k + 1], past_key_values=cache,
                          use_cache=True, position_embeddings=rope)
            code = pick(k, head(tr.norm(h)[:, -1]))  # logits (B, V_k) -> (B,)
            codes.append(code)
            if k + 1 < self.num_codebooks:
                step_in = self.code_embeds[k](code).unsqueeze(1)  # (B, 1, d)
        return torch.stack(codes, dim=-1)  # (B, K)
