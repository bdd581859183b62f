"""Text-only beam search over omni prompts (speech, images, text): transformers' own beam search.

The omni model's backbone is a ``transformers`` causal LM, and a text-only reply needs nothing but its text
head, so the prompt is embedded once (text tokens, audio frames and vision features in place, as
:meth:`OmniModel.embed` does for :func:`omni.model.generation.generate`) and handed to the backbone's
``generate`` as ``inputs_embeds`` with ``num_beams``; each next token is embedded by the backbone's own table.
Placeholders and the switch to speech are suppressed, as in the text mode of the decoding loop, so with one
beam this is the loop's greedy text (tested). Positions are what :func:`omni.model.batch.collate` gives a
left-padded prompt, which is what ``transformers`` derives from the attention mask.

:func:`text_replies` picks between the loop's greedy text and this; ``omni eval asr`` (``recognizer.beam_size``)
and ``omni eval qa`` (``beam_size``) call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import transformers

from omni.model.batch import OmniBatch, OmniExample
from omni.model.generation import banned_in_text, prompt_batch
from omni.model.sampling import SamplingConfig

if TYPE_CHECKING:
    from omni.model.model import OmniModel


@torch.no_grad()
def beam_text(model: OmniModel, prompts: OmniBatch | OmniExample | Sequence[OmniExample], num_beams: int,
              max_new_tokens: int, length_penalty: float = 1.0) -> list[str]:
    """The best beam's text reply to each prompt.

    Args:
        model: the omni model (eval mode).
        prompts: one example, a list (collated with left padding) or a left-padded batch, as for ``generate``.
        num_beams: beam width (1 = greedy).
        max_new_tokens: most generated tokens per row.
        length_penalty: ``transformers``' exponent on the length that divides a finished beam's log-probability.

    Returns:
        Per prompt, the reply's text up to its stop token (special tokens left out).
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    batch = prompt_batch(model, prompts)
    t = model.token_ids
    config = transformers.GenerationConfig(
        num_beams=num_beams, do_sample=False, max_new_tokens=max_new_tokens, length_penalty=length_penalty,
        early_stopping=True, eos_token_id=sorted(set(t.eos)), pad_token_id=t.pad,
        suppress_tokens=banned_in_text(model, allow_audio=False),
    )
    embeds = model.embed(batch)  # (B, T, D)
    new = model.backbone.generate(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                  generation_config=config)  # (B, S): only the generated tokens
    stops = set(t.eos)
    texts = []
    for row in new.tolist():
        cut = next((i for i, tok in enumerate(row) if tok in stops), len(row))
        texts.append(model.tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts


def text_replies(model: OmniModel, prompts: OmniBatch | OmniExample | Sequence[OmniExample], max_new_tokens: int,
                 num_beams: int = 1) -> list[str]:
    """Text-only replies to ``prompts``: the decoding loop's greedy text, or with ``num_beams > 1`` the best beam
    (:func:`beam_text`)."""
    if num_beams > 1:
        return beam_text(model, prompts, num_beams, max_new_tokens)
    return model.generate(prompts, max_new_tokens=max_new_tokens, allow_audio=False,
                          text=SamplingConfig(do_sample=False)).text
