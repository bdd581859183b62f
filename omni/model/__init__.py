"""The omni model: any Hugging Face causal LM + NaViT vision branch + audio embedding + depth-transformer audio head.

One component per module:

==================  ===============================================================
module              holds
==================  ===============================================================
``config``          :class:`OmniModelConfig` (``kind: omni_model``)
``backbone``        the causal LM from a local path or a config (``BackboneConfig``)
``vision``          Qwen2-VL vision tower + 2x2 merger/projector (``VisionConfig``)
``vision_inputs``   images / videos to patches (Qwen2-VL processor, 1 fps, <= 32 frames)
``audio_embed``     per-codebook tables, summed, projected (``AudioEmbeddingConfig``)
``audio_head``      3-layer depth transformer + 8 heads (``AudioHeadConfig``)
``special_tokens``  the special tokens and their ids
``chat``            the chat template: messages -> :class:`OmniExample`
``batch``           :class:`OmniExample`, :class:`OmniBatch`, ``collate``, ``pack``
``model``           :class:`OmniModel`, :class:`OmniOutput`
``losses``          text / audio cross-entropy, per-position and per-sequence log-probs
``params``          parameter groups, ``set_trainable``
``sampling``        per-modality sampling settings (transformers' logits processors)
``generation``      the decoding loop, ``generate``, ``GenerationConfig``
``streaming``       ``stream``: text pieces and audio frames as they are made
``beam``            ``beam_text`` (transformers' beam search over omni prompts), ``text_replies`` (greedy or beams)
``save_load``       ``save_pretrained`` / ``from_pretrained`` (local directories only)
``tiny``            tiny models for tests
==================  ===============================================================
"""

from omni.model.backbone import BackboneConfig, ModelLoadError
from omni.model.batch import IGNORE, OmniBatch, OmniExample, collate, pack
from omni.model.chat import Audio, Image, Message, Text, Video, encode_conversation
from omni.model.config import OmniModelConfig
from omni.model.generation import GenerationConfig, GenerationOutput, generate
from omni.model.model import OmniModel, OmniOutput
from omni.model.sampling import SamplingConfig
from omni.model.streaming import AudioFrame, AudioSegmentEnd, Finished, TextPiece, stream

__all__ = [
    "IGNORE", "Audio", "AudioFrame", "AudioSegmentEnd", "BackboneConfig", "Finished", "GenerationConfig",
    "GenerationOutput", "Image", "Message", "ModelLoadError", "OmniBatch", "OmniExample", "OmniModel",
    "OmniModelConfig", "OmniOutput", "SamplingConfig", "Text", "TextPiece", "Video", "collate",
    "encode_conversation", "generate", "pack", "stream",
]
