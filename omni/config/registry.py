"""Config kinds: the ``kind:`` key of a YAML file names the dataclass it loads into.

The table maps each kind to ``"module:Class"`` and is imported lazily, so
loading a corpus config does not import torch models. A new config kind is one
new line here (and its dataclass beside the component it configures).
"""

from __future__ import annotations

import importlib

KINDS: dict[str, str] = {
    "corpus": "omni.data.synth.config:CorpusConfig",
    "images": "omni.data.synth.image_set:ImageSetConfig",
    "bundle": "omni.bundle:BundleConfig",
    "flow_decoder": "decoders.flow:FlowDecoderConfig",
    "flow_train": "decoders.train_flow:FlowTrainConfig",
    "vocoder": "decoders.vocoder:VocoderConfig",
    "vocoder_train": "decoders.train_vocoder:VocoderTrainConfig",
    "speech_decoder": "decoders.speech_decoder:SpeechDecoderConfig",
    "omni_model": "omni.model.config:OmniModelConfig",
    "recognizer": "omni.eval.recognizers.base:RecognizerConfig",
    "eval_asr": "omni.eval.asr:AsrEvalConfig",
    "eval_tts": "omni.eval.tts:TtsEvalConfig",
    "eval_tokenizer": "omni.eval.tokenizer_eval:TokenizerEvalConfig",
    "eval_vocoder": "omni.eval.vocoder_eval:VocoderEvalConfig",
    "generation": "omni.model.generation:GenerationConfig",
    "audio_tokenizer": "audio_tokenizer.model:AudioTokenizerConfig",
    "tokenizer": "audio_tokenizer.train:TokenizerTrainConfig",
    "lm": "omni.text.lm:LMTrainConfig",
    "vision_warmup": "omni.vision.warmup:VisionWarmupConfig",
    "serve": "serve.config:ServeConfig",
    "bench": "omni.bench.core:BenchConfig",
    "stage": "omni.training.stage:StageConfig",
    "recipe": "omni.training.pipeline:RecipeConfig",
    "dpo": "omni.align.config:DPOConfig",
    "code_cache": "omni.training.recipe_steps:CodeCacheConfig",
    "bundle_assemble": "omni.training.recipe_steps:AssembleConfig",
    "make_pairs": "omni.training.recipe_steps:PairsConfig",
    "eval_qa": "omni.eval.qa:QaEvalConfig",
    "recipe_report": "omni.eval.recipe_report:RecipeReportConfig",
}


def config_class(kind: str) -> type:
    """The dataclass registered for ``kind``; ValueError listing known kinds otherwise."""
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown config kind '{kind}'; known kinds: {known}")
    module_name, _, class_name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def kind_of(cls: type) -> str:
    """The kind registered for dataclass ``cls``; ValueError if it has none."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for kind, path in KINDS.items():
        if path == target:
            return kind
    raise ValueError(f"{cls.__name__} is not a registered config kind")
