"""When a speech reply switches from text to speech: a logits processor for the omni generation loop.

A spoken reply interleaves text and speech in one sequence::

    <|im_start|>assistant\\n Two plus <|audio_gen_start|> <|audio|> x n <|audio_end|> three is five. <|audio_gen_start|> ...

A model trained on whole replies says all of its text before it switches to
speech, so the first audio would wait for the whole text. Like Baichuan-Omni's
demo, :class:`SpeechSwitch` switches to speech after each sentence (or after
``first_tokens`` text tokens for the first segment, ``later_tokens`` after
that), so the first audio chunk leaves after ``first_tokens + 1 + first chunk``
LLM steps at most (6 + 1 + 8 = 15 by default); and when the model would stop
with text not yet spoken, the stop becomes a switch (its probability moves to
the switch token). Policies: ``sentence`` (above), ``end`` (only the stop rule),
``model`` (no steering).

It is a ``transformers``-style logits processor (``(input_ids, logits) -> logits``)
for one row, called once per step before the choice (so ``calls`` counts LLM steps);
setting ``cancel`` (a ``threading.Event``) stops generation at the next step.
"""

from __future__ import annotations

import threading
from typing import Literal

import torch

from omni.model.special_tokens import TokenIds

SENTENCE_END = (".", "!", "?", ";", "\n", "。", "！", "？", "；")


class GenerationCancelled(Exception):
    """Raised inside the generation loop when the reply was cancelled (client gone, stop button)."""


def sentence_end_mask(tokenizer, vocab_size: int) -> torch.Tensor:
    """(V,) bool: tokens whose text ends a sentence (``.``, ``!``, ``?``, newline, CJK stops)."""
    n = min(len(tokenizer), vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[:n] = torch.tensor([t.rstrip(" ").endswith(SENTENCE_END) for t in texts])
    return mask


class SpeechSwitch:
    """Steers one row's reply to speak after each sentence / token budget (see the module docstring).

    Args:
        ids: the model's special token ids.
        sentence_end: (V,) bool, from :func:`sentence_end_mask`.
        policy: sentence, end or model.
        first_tokens / later_tokens: text tokens of the first / a later segment before a forced switch.
        prompt_len: length of the prompt (its last token tells whether the reply starts in speech).
        prompt_last: the prompt's last token id.
        cancel: when set, the next step raises :class:`GenerationCancelled`.
    """

    def __init__(self, ids: TokenIds, sentence_end: torch.Tensor, policy: Literal["sentence", "end", "model"],
                 first_tokens: int, later_tokens: int, prompt_len: int, prompt_last: int,
                 cancel: threading.Event | None = None):
        self.ids = ids
        self.sentence_end = sentence_end
        self.policy = policy
        self.first_tokens, self.later_tokens = first_tokens, later_tokens
        self.prompt_len = prompt_len
        self.cancel = cancel
        self.calls = 0  # LLM steps so far
        self.in_audio = prompt_last == ids.audio_gen_start
        self.segments = int(self.in_audio)  # speech segments started
        self.pending = 0  # text tokens since the last speech segment
        self.last_ends_sentence = False
        self.stops = torch.tensor(sorted(set(ids.eos)), dtype=torch.long)

    def _see(self, token: int) -> None:
        t = self.ids
        if token == t.audio_gen_start:
            self.in_audio, self.pending = True, 0
            self.segments += 1
        elif token == t.audio_end:
            self.in_audio = False
        elif token != t.audio and not self.in_audio:
            self.pending += 1
            self.last_ends_sentence = bool(token < len(self.sentence_end) and self.sentence_end[token])

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """input_ids (1, T + s), logits (1, V) -> logits (1, V)."""
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("reply cancelled")
        self.calls += 1
        if input_ids.shape[1] > self.prompt_len:
            self._see(int(input_ids[0, -1]))
        if self.policy == "model" or self.in_audio or self.pending == 0:
            return logits
        limit = self.first_tokens if self.segments == 0 else self.later_tokens
        if self.policy == "sentence" and (self.last_ends_sentence or self.pending >= limit):
            forced = torch.full_like(logits, float("-inf"))
            forced[:, self.ids.audio_gen_start] = 0.0
            return forced
        # unspoken text: stopping becomes switching (the stop tokens' probability moves to the switch)
        stops = self.stops.to(logits.device)
        logits = logits.clone()
        both = torch.cat([logits[:, self.ids.audio_gen_start:self.ids.audio_gen_start + 1], logits[:, stops]], dim=1)
        logits[:, self.ids.audio_gen_start] = torch.logsumexp(both, dim=1)
        logits[:, stops] = float("-inf")
        return logits
