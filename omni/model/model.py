"""The omni model: an HF causal LM whose input placeholders are replaced by audio and vision features.

Forward (see :mod:`omni.model.batch` for the layout)::

    input_ids (B, T) ──► LLM token embedding ─────────────────┐
    audio_codes (N, K) ─► AudioEmbedding ─► at <|audio|>       ├─► inputs_embeds (B, T, D) ─► causal LM
    pixel_values ───────► VisionBranch ──► at <|image|>/<|video|> ┘        │
                                                                         ├─► text_logits (B, T, V)
                                   hidden (B, T, D) at p-1 of each target frame p ─► AudioHead ─► K x (N_t, V_k)

Losses and log-probs are pure functions in :mod:`omni.model.losses`;
generation is :mod:`omni.model.generation`; save/load is
:mod:`omni.model.save_load`; parameter groups and freezing are
:mod:`omni.model.params`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from omni.model.audio_embed import AudioEmbedding
from omni.model.audio_head import AudioHead
from omni.model.backbone import DTYPES, LAST_HIDDEN_STATE, build_backbone, local_dir
from omni.model.batch import OmniBatch
from omni.model.config import OmniModelConfig
from omni.model.losses import AudioLoss, LossSum, audio_loss, text_loss
from omni.model.special_tokens import TokenIds, add_special_tokens, token_ids
from omni.model.vision import VisionBranch, vision_hf_config


@dataclass
class OmniOutput:
    """What :meth:`OmniModel.forward` returns.

    Attributes:
        text_logits: (B, T, V) next-token logits (only the last ``logits_to_keep`` positions when set).
        hidden_states: (B, T, D) last-layer LLM hidden states (after the final norm).
        audio_logits: K tensors, level k: (N_t, V_k), one row per audio *target* frame, in the order of
            ``batch.audio_codes[batch.audio_target]``.
        audio_frame_index: (N_t, 2) long: (row, position) of each target frame in the batch.
        past_key_values: the LLM KV cache when ``use_cache``.
        aux_loss: the backbone's auxiliary loss (MoE load balancing, when its config enables router logits).
        text_loss / audio_loss: when the batch has labels (and ``return_loss``): the summed losses of
            :func:`omni.model.losses.text_loss` / :func:`~omni.model.losses.audio_loss` with their counts.
        loss: their per-unit means added (mean text CE + mean level-weighted audio CE), a convenience;
            training tasks combine the sums themselves for exact normalisation.
    """

    text_logits: torch.Tensor
    hidden_states: torch.Tensor
    audio_logits: list[torch.Tensor]
    audio_frame_index: torch.Tensor
    past_key_values: Any = None
    aux_loss: torch.Tensor | None = None
    text_loss: LossSum | None = None
    audio_loss: AudioLoss | None = None
    loss: torch.Tensor | None = None


class OmniModel(nn.Module):
    """Backbone LLM + vision branch + audio embedding + audio head, with the tokenizer they share.

    Build with :meth:`from_config` (tokenizer from ``cfg.tokenizer`` / the backbone's directory, or
    given), or load a saved model with :meth:`from_pretrained`.

    Attributes:
        backbone: the ``transformers`` causal LM.
        vision: :class:`VisionBranch` or None.
        audio_embed / audio_head: the audio modules.
        tokenizer: text tokenizer with the omni special tokens; ``token_ids`` their ids.
    """

    def __init__(self, cfg: OmniModelConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 vision: VisionBranch | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.vision = vision
        width = backbone.config.get_text_config().hidden_size
        self.audio_embed = AudioEmbedding(cfg.audio_embed, cfg.codebook_sizes, width)
        self.audio_head = AudioHead(cfg.audio_head, cfg.codebook_sizes, width)
        self.tokenizer = tokenizer
        self.token_ids: TokenIds = token_ids(tokenizer)
        dtype = DTYPES[cfg.backbone.dtype]
        for module in (self.audio_embed, self.audio_head, self.vision):
            if module is not None:
                module.to(dtype)

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def from_config(cls, cfg: OmniModelConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> OmniModel:
        """Build the model: load pretrained parts from local paths, initialise the rest.

        Args:
            cfg: the model config.
            tokenizer: overrides ``cfg.tokenizer``; the special tokens are added to it (in place).

        Raises:
            ModelLoadError / FileNotFoundError: a configured path is not a local model / tokenizer directory.
            ValueError: no tokenizer is configured for a model built from scratch.
        """
        if cfg.backbone.path:  # fail fast, naming the field, before anything is loaded
            local_dir(cfg.backbone.path, "backbone.path")
        if cfg.vision.enabled and cfg.vision.path:
            local_dir(cfg.vision.path, "vision.path")
        tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(cfg)
        add_special_tokens(tokenizer)
        backbone = build_backbone(cfg.backbone, vocab_size=len(tokenizer))
        if len(tokenizer) > backbone.get_input_embeddings().weight.shape[0]:
            backbone.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
        vision = None
        if cfg.vision.enabled:
            width = backbone.config.get_text_config().hidden_size
            vision = VisionBranch(vision_hf_config(cfg.vision, width), cfg.backbone.attn_implementation)
            if cfg.vision.path:
                vision.load_pretrained(cfg.vision.path)
        return cls(cfg, backbone, tokenizer, vision)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> OmniModel:
        """Load a model saved by :meth:`save_pretrained` from a local directory (never downloads)."""
        from omni.model.save_load import load_pretrained

        return load_pretrained(path)

    def save_pretrained(self, path: str | os.PathLike, max_shard_size: str = "5GB") -> None:
        """Write config, safetensors weights and tokenizer files to ``path`` (see :mod:`omni.model.save_load`)."""
        from omni.model.save_load import save_pretrained

        save_pretrained(self, path, max_shard_size=max_shard_size)

    # ----------------------------------------------------------------------------------------- inputs
    @property
    def device(self) -> torch.device:
        return self.backbone.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.get_input_embeddings().weight.dtype

    def vision_features(self, batch: OmniBatch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Projected features of the batch's images and videos: (N_img_tokens, D), (N_vid_tokens, D)."""
        out = []
        for pixels, grid, name in ((batch.pixel_values, batch.image_grid_thw, "images"),
                                   (batch.pixel_values_videos, batch.video_grid_thw, "videos")):
            if pixels is None:
                out.append(None)
                continue
            if self.vision is None:
                raise ValueError(f"the batch has {name} but this model has no vision branch (vision.enabled: false)")
            out.append(self.vision(pixels, grid))
        return out[0], out[1]

    def embed(self, batch: OmniBatch, features: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
              ) -> torch.Tensor:
        """Input embeddings with placeholders replaced by audio and vision features.

        Args:
            batch: ids, audio codes and vision inputs.
            features: precomputed :meth:`vision_features` (generation without cache reuses them).

        Returns:
            (B, T, D) inputs_embeds.

        Raises:
            ValueError: the number of placeholders and of frames / vision tokens disagree.
        """
        ids = batch.input_ids
        emb = self.backbone.get_input_embeddings()(ids)  # (B, T, D)
        emb = self._scatter(emb, ids == self.token_ids.audio, batch.audio_codes, "<|audio|>", "audio frames",
                            self.audio_embed)
        if features is None:
            features = self.vision_features(batch)
        for feats, token, name in ((features[0], self.token_ids.image, "<|image|>"),
                                   (features[1], self.token_ids.video, "<|video|>")):
            emb = self._scatter(emb, ids == token, feats, name, "vision tokens")
        return emb

    def _scatter(self, emb: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None, token: str,
                 what: str, encoder: nn.Module | None = None) -> torch.Tensor:
        n_slots = int(mask.sum())
        n_values = 0 if values is None else int(values.shape[0])
        if n_slots != n_values:
            raise ValueError(f"the batch has {n_slots} {token} placeholders but {n_values} {what}")
        if n_slots == 0:
            return emb
        feats = encoder(values) if encoder is not None else values  # (N, D)
        return emb.masked_scatter(mask.unsqueeze(-1), feats.to(emb.dtype))

    def embed_step(self, tokens: torch.Tensor, codes: torch.Tensor, is_frame: torch.Tensor) -> torch.Tensor:
        """Embeddings of one generated position per row: a text token, or an audio frame where ``is_frame``.

        Args:
            tokens: (B,) long; codes: (B, K) long; is_frame: (B,) bool.

        Returns:
            (B, 1, D)
        """
        text = self.backbone.get_input_embeddings()(tokens)  # (B, D)
        audio = self.audio_embed(codes).to(text.dtype)  # (B, D)
        return torch.where(is_frame.unsqueeze(-1), audio, text).unsqueeze(1)

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, batch: OmniBatch, *, past_key_values: Any = None, use_cache: bool = False,
                logits_to_keep: int = 0, inputs_embeds: torch.Tensor | None = None, return_loss: bool = True,
                audio_level_weights: list[float] | None = None) -> OmniOutput:
        """Run the LLM over the batch and the audio head over its target frames.

        Args:
            batch: see :mod:`omni.model.batch`.
            past_key_values: an LLM cache to extend (generation).
            use_cache: return the cache.
            logits_to_keep: compute text logits for the last n positions only (0 = all).
            inputs_embeds: precomputed :meth:`embed` output.
            return_loss: with ``batch.labels``, also compute the losses (the pure functions of
                :mod:`omni.model.losses`); DPO-style callers that only need log-probs pass False.
            audio_level_weights: per-codebook weights of the audio loss (default all 1).

        Returns:
            :class:`OmniOutput`.
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed(batch)
        if self.training:
            anchor = self._unused_branch_anchor(batch)
            if anchor is not None:
                inputs_embeds = inputs_embeds + anchor
        out = self.backbone(
            inputs_embeds=inputs_embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
            past_key_values=past_key_values, use_cache=use_cache, output_hidden_states=LAST_HIDDEN_STATE,
            logits_to_keep=logits_to_keep,
        )
        hidden = out.hidden_states[-1]  # (B, T, D) after the final norm
        frames = (batch.input_ids == self.token_ids.audio).nonzero()  # (N, 2) row-major, as audio_codes
        index = frames[batch.audio_target.to(frames.device)]  # (N_t, 2)
        if index.shape[0] and bool((index[:, 1] == 0).any()):
            raise ValueError("an audio target frame is the first token of its row; nothing precedes it to predict it")
        prev = hidden[index[:, 0], index[:, 1] - 1]  # (N_t, D) state that predicts each target frame
        target_codes = batch.audio_codes[batch.audio_target]  # (N_t, K)
        audio_logits = self.audio_head(prev, target_codes)
        output = OmniOutput(
            text_logits=out.logits, hidden_states=hidden, audio_logits=audio_logits, audio_frame_index=index,
            past_key_values=out.past_key_values if use_cache else None, aux_loss=getattr(out, "aux_loss", None),
        )
        if return_loss and batch.labels is not None and logits_to_keep == 0:
            output.text_loss = text_loss(output.text_logits, batch.labels)
            output.audio_loss = audio_loss(audio_logits, target_codes, audio_level_weights)
            output.loss = output.text_loss.mean() + output.audio_loss.mean()
        return output

    def _unused_branch_anchor(self, batch: OmniBatch) -> torch.Tensor | None:
        """0 x the outputs of trainable branches this batch does not use (training only).

        A text-only batch leaves the audio modules (and an image-free one the vision tower) out of the
        graph; DDP without ``find_unused_parameters`` then fails. A zero-weighted pass over a dummy
        input keeps every trainable parameter in the graph (with zero gradient) at negligible cost.
        """

        def trainable(module: nn.Module | None) -> bool:
            return module is not None and any(p.requires_grad for p in module.parameters())

        dev, k = self.device, self.cfg.num_codebooks
        terms = []
        has_frames = bool((batch.input_ids == self.token_ids.audio).any())
        if not has_frames and trainable(self.audio_embed):
            terms.append(self.audio_embed(torch.zeros(1, k, dtype=torch.long, device=dev)).sum())
        if not bool(batch.audio_target.any()) and trainable(self.audio_head):
            width = self.backbone.config.get_text_config().hidden_size
            logits = self.audio_head(torch.zeros(1, width, device=dev, dtype=self.dtype),
                                     torch.zeros(1, k, dtype=torch.long, device=dev))
            terms.extend(lg.sum() for lg in logits)
        if batch.pixel_values is None and batch.pixel_values_videos is None and trainable(self.vision):
            vc = self.vision.config
            m = vc.spatial_merge_size
            pixels = torch.zeros(m * m, vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, device=dev)
            terms.append(self.vision(pixels, torch.tensor([[1, m, m]], device=dev)).sum())
        return sum(terms) * 0.0 if terms else None

    # ----------------------------------------------------------------------------------------- convenience
    def encode(self, messages: list, **kwargs: Any):
        """:func:`omni.model.chat.encode_conversation` with this model's tokenizer and settings."""
        from omni.model.chat import encode_conversation

        kwargs.setdefault("think_block", self.cfg.think_block)
        kwargs.setdefault("merge_size", self.cfg.vision.spatial_merge_size)
        return encode_conversation(messages, self.tokenizer, self.token_ids, **kwargs)

    def generate(self, prompts: Any, config: Any = None, **kwargs: Any):
        """:func:`omni.model.generation.generate` on this model."""
        from omni.model.generation import generate

        return generate(self, prompts, config, **kwargs)

    def stream(self, prompt: Any, config: Any = None, **kwargs: Any):
        """:func:`omni.model.streaming.stream` on this model."""
        from omni.model.streaming import stream

        return stream(self, prompt, config, **kwargs)

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """:func:`omni.model.params.parameter_groups` of this model."""
        from omni.model.params import parameter_groups

        return parameter_groups(self)

    def set_trainable(self, groups: Any, verbose: bool = False):
        """:func:`omni.model.params.set_trainable` on this model."""
        from omni.model.params import set_trainable

        return set_trainable(self, groups, verbose=verbose)


def _load_tokenizer(cfg: OmniModelConfig) -> PreTrainedTokenizerBase:
    from omni.text.tokenizer import load_tokenizer

    path = cfg.tokenizer or cfg.backbone.path
    if not path:
        raise ValueError("model: no tokenizer: set 'tokenizer' to a local tokenizer directory (e.g. one made by "
                         "`omni data bpe`) or give backbone.path, or pass tokenizer= to OmniModel.from_config")
    try:
        return load_tokenizer(path)
    except FileNotFoundError as e:
        field = "tokenizer" if cfg.tokenizer else "backbone.path"
        raise FileNotFoundError(f"{field}: {e}") from None
