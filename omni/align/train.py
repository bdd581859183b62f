"""Running a preference-alignment stage: policy, LoRA, reference, data, the shared loop, the final export.

:func:`train_preference` loads the SFT model (``init_from``), builds the reference (a frozen copy, the
cached log-probs of the starting policy, or nothing), wraps the LLM in LoRA adapters when configured,
freezes / unfreezes with :func:`~omni.training.stage.apply_trainable`, and runs the shared
:class:`~omni.training.trainer.Trainer` with a :class:`~omni.align.task.PreferenceTask`. The aligned model
is written with ``save_pretrained`` to ``output_dir/final`` (LoRA adapters merged; the adapters alone to
``output_dir/adapter``). With ``replay`` the pairs are zipped with a stage mixture's rows
(:func:`with_replay`), in the order they would have without it. Checkpoints, resume, SIGTERM, TensorBoard and
multi-process come from the loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omni.align.config import DPOConfig, LoraSettings
from omni.training.stage import FINAL_DIR, is_model_dir
from omni.training.trainer import TrainContext, TrainResult

ADAPTER_DIR = "adapter"
CACHE_FILE = "reference_logps.safetensors"


@dataclass
class PreferenceRun:
    """Outcome of :func:`train_preference`: the loop's result, ``output_dir/final`` (None when stopped early)
    and the trained model (this process's copy)."""

    result: TrainResult
    final_dir: Path | None
    model: nn.Module


def apply_lora(model: nn.Module, cfg: LoraSettings) -> nn.Module:
    """Wrap ``model.backbone`` in a ``peft.PeftModel`` with LoRA adapters on ``cfg.target_modules`` (in place).

    Raises:
        ValueError: no module of the LLM matches ``target_modules``.
    """
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.backbone.named_modules()}
    if not set(cfg.target_modules) & names:
        raise ValueError(f"lora.target_modules: none of {cfg.target_modules} is a module of the LLM")
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules))
    model.backbone = get_peft_model(model.backbone, lora)
    return model


def export_aligned(ctx: TrainContext, path: Path, adapter_dir: Path | None) -> None:
    """Write the aligned model to ``path`` (all processes call it; the main process writes). With LoRA the
    adapters are saved to ``adapter_dir`` and merged into the LLM first."""
    from omni.training.stage import export_final

    acc = ctx.accelerator
    model = acc.unwrap_model(ctx.model)
    if adapter_dir is None:
        export_final(ctx, path)
        return
    if acc.is_main_process:
        model.backbone.save_pretrained(str(adapter_dir))
    model.backbone = model.backbone.merge_and_unload()
    if acc.is_main_process:
        from omni.model.save_load import save_pretrained

        save_pretrained(model, path)
        print(f"saved the aligned model (LoRA merged) to {path}, the adapters to {adapter_dir}")
    acc.wait_for_everyone()


def build_data(cfg: DPOConfig, model: Any) -> tuple[Any, Any, Any]:
    """(train data set, dev data set or None, collator) for ``model``."""
    from omni.align.data import PairEncoder, PreferenceCollate, PreferenceDataset
    from omni.data.media import CachedMedia, ShapeMedia

    encoder = PairEncoder(model.tokenizer, model.token_ids, cfg.data, cfg.loop.seed,
                          merge_size=model.cfg.vision.spatial_merge_size, think_block=model.cfg.think_block)
    sizes = list(model.cfg.codebook_sizes)
    vision = model.cfg.vision if model.vision is not None else None
    mode = "unpaired" if cfg.loss.type == "kto" else "pairs"
    train = PreferenceDataset(cfg.data.train, encoder, CachedMedia(sizes, vision), ShapeMedia(sizes, vision), mode,
                              cfg.data.max_rows, "data.train")
    dev = None
    if cfg.data.dev:
        dev = PreferenceDataset(cfg.data.dev, encoder, CachedMedia(sizes, vision), ShapeMedia(sizes, vision), mode,
                                0, "data.dev")
    return train, dev, PreferenceCollate(model.token_ids.pad, model.token_ids.audio)


def with_replay(cfg: DPOConfig, model: Any, train: Any, collate: Any, state: Any) -> tuple[Any, Any, Any]:
    """(joint data set, joint collate, joint plan): the pairs zipped with ``cfg.replay``'s stage rows
    (:mod:`omni.align.replay`); prints the replay mixture's counts."""
    from omni.align.replay import JointCollate, JointDataset, JointPlan
    from omni.data.dataset import build_stage_data
    from omni.training.trainer import default_plan

    rows = build_stage_data(cfg.replay.data, model, cfg.loop.seed, cfg.replay.batch_size, state.process_index,
                            state.num_processes)
    if state.is_main_process:
        counts = ", ".join(f"{src.name} {s.examples}" for src, s in zip(rows.index.sources, rows.index.stats))
        print(f"replay: {cfg.replay.batch_size} rows a step at weight {cfg.replay.weight} from {counts} "
              "examples (this process)")
    return (JointDataset(train, rows.dataset), JointCollate(collate, rows.collate),
            JointPlan(default_plan(len(train), cfg.loop), rows.plan))


def train_preference(cfg: DPOConfig) -> PreferenceRun:
    """Train (or resume, or find finished) a preference stage and write ``output_dir/final``."""
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from omni.align.reference import (
        AdapterReference,
        CachedReference,
        FrozenReference,
        data_fingerprint,
        model_fingerprint,
        precompute_reference,
    )
    from omni.align.task import PreferenceTask, evaluate_preference
    from omni.config import save_config
    from omni.model import OmniModel
    from omni.training.checkpoint import run_complete
    from omni.training.optim import build_optimizer, build_scheduler
    from omni.training.stage import apply_trainable
    from omni.training.trainer import Trainer

    state = PartialState(cpu=cfg.loop.cpu or not torch.cuda.is_available())
    run_dir = Path(cfg.loop.output_dir)
    final = run_dir / FINAL_DIR
    set_seed(cfg.loop.seed)
    if not is_model_dir(cfg.init_from):
        raise FileNotFoundError(f"init_from: '{cfg.init_from}' is not a saved omni model (the SFT stage writes "
                                f"<output_dir>/{FINAL_DIR})")
    model = OmniModel.from_pretrained(cfg.init_from)
    train, dev, collate = build_data(cfg, model)
    if state.is_main_process:
        r = train.report
        print(f"preference data: {r.items} training items from {r.rows} rows ({r.bad} unusable, {r.too_long} too "
              f"long)" + (f"; {len(dev)} dev items" if dev is not None else ""))
    reference: Any = None
    mode = cfg.reference.mode
    if mode == "copy":
        reference = FrozenReference(model).to(state.device)
    elif mode == "cached":
        model.to(state.device)
        settings = {"data": asdict(cfg.data), "loss": cfg.loss.type}
        fingerprint = model_fingerprint(model) + ":" + data_fingerprint([*cfg.data.train, *cfg.data.dev], settings)
        path = cfg.reference.cache or str(run_dir / CACHE_FILE)
        log = print if state.is_main_process else (lambda *_: None)
        collate.reference = precompute_reference(model, [d for d in (train, dev) if d is not None], collate, path,
                                                 fingerprint, cfg.reference.batch_size, log)
        reference = CachedReference()
    elif mode == "adapters":
        reference = AdapterReference()
    if cfg.lora is not None:
        apply_lora(model, cfg.lora)
    model.train()
    if cfg.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    setup = apply_trainable(model, cfg.trainable, cfg.param_groups, cfg.optim, verbose=state.is_main_process)
    optimizer = build_optimizer(setup.param_groups, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.loop.max_steps)
    task = PreferenceTask(cfg.loss, reference, cfg.replay.weight if cfg.replay is not None else 1.0)
    data, collate_fn, plan = train, collate, None
    if cfg.replay is not None:
        data, collate_fn, plan = with_replay(cfg, model, train, collate, state)
    evaluate = None
    if dev is not None:
        evaluate = partial(evaluate_preference, dev=dev, collate=collate, cfg=cfg.loss, reference=reference,
                           batch_size=cfg.data.eval_batch_size)
    trainer = Trainer(cfg.loop, task, model, data, collate_fn, {"main": optimizer}, {"main": scheduler},
                      evaluate=evaluate, grad_clip=cfg.optim.grad_clip, batches=plan)
    if trainer.acc.is_main_process and not run_complete(run_dir):
        save_config(cfg, run_dir / "config.yaml")
    adapter = run_dir / ADAPTER_DIR if cfg.lora is not None else None
    on_complete = None if is_model_dir(final) else partial(export_aligned, path=final, adapter_dir=adapter)
    result = trainer.fit(on_complete=on_complete)
    return PreferenceRun(result, final if result.complete else None, trainer.acc.unwrap_model(trainer.model))
