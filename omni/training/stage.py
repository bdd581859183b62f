"""One stage of the staged training (``omni train stage CONFIG``, kind ``stage``).

A stage YAML declares everything the design brief's table (section 6) varies between stages:
where the model comes from (``init_from``: the previous stage's ``RUN/final``, or ``model``: an
``omni_model`` YAML to build), which parameter groups train (``trainable``) and at which learning
rates (``param_groups``), the schedule (``optim``), the data mixture and sequence length (``data``)
and the loop (``loop``). :func:`apply_trainable` applies the freezing and per-group learning rates in
one place; :func:`train_stage` runs the shared :class:`~omni.training.trainer.Trainer` and writes the
final model with ``save_pretrained`` to ``RUN/final`` (atomically), which the next stage loads.

Parameter selectors (in ``trainable`` and ``param_groups[].match``) are the model's named groups
(``llm``, ``embeddings``, ``lm_head``, ``vision_encoder``, ``vision_projector``, ``audio_embed``,
``audio_head``, see :mod:`omni.model.params`), ``all``, or glob patterns over parameter names
(``backbone.model.layers.0.*``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from omni.config import check, option
from omni.data.dataset import DataConfig
from omni.training.config import LoopConfig, OptimConfig
from omni.training.trainer import TrainContext, TrainResult

if TYPE_CHECKING:
    from omni.model.projector_init import ProjectorStart

FINAL_DIR = "final"


@dataclass
class ParamGroupConfig:
    """Trainable parameters that share a learning rate."""

    name: str = option(help="Group name (TensorBoard logs its rate as lr/main/<name>).")
    match: list[str] = option(help="Selectors: model groups (llm, embeddings, lm_head, vision_encoder, "
                                   "vision_projector, audio_embed, audio_head), 'all', or globs over parameter names.")
    lr: float = option(help="Peak learning rate of the group (the schedule scales it like every group's).")
    weight_decay: float | None = option(None, help="AdamW weight decay of the group's matrices (null: optim.weight_decay); "
                                                   "biases and norms never decay.")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()), "name", "must be set")
        check(bool(self.match), "match", "needs at least one selector")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.weight_decay is None or self.weight_decay >= 0, "weight_decay", "must be >= 0 or null")


@dataclass
class ProjectorInitConfig:
    """``projector_init``: centre the vision projector's output on real images when the stage starts."""

    images: str | None = option(None, help="Image manifest (e.g. data/images/image_caption_train.jsonl) whose first "
                                "images' projected tokens are shifted to mean zero and scaled to mean norm 'norm' "
                                "(omni.model.projector_init; reports/learning.md V). null: the random projector.")
    count: int = option(256, help="Distinct images measured (the manifest's first).")
    norm: float = option(1.0, help="Mean norm of the centred image tokens (text embeddings of the tiny LM: 0.33).")

    def __post_init__(self) -> None:
        check(self.count >= 2, "count", "must be >= 2")
        check(self.norm > 0, "norm", "must be > 0")


@dataclass
class LossConfig:
    """How text and audio losses add up."""

    audio_weight: float = option(1.0, help="Weight of the audio-head loss (per frame, summed over codebooks) next "
                                           "to the text loss (per token).")
    audio_level_weights: list[float] | None = option(None, help="Per-codebook weights of the audio loss (null: all 1).")

    def __post_init__(self) -> None:
        check(self.audio_weight >= 0, "audio_weight", "must be >= 0")
        check(self.audio_level_weights is None or all(w >= 0 for w in self.audio_level_weights),
              "audio_level_weights", "weights must be >= 0")


@dataclass
class StageConfig:
    """``omni train stage``: one stage of the staged training."""

    name: str = option(help="Stage name (logs, recipes).")
    loop: LoopConfig = option(help="Steps, global batch (rows), accumulation, precision, checkpoints, evaluation.")
    data: DataConfig = option(help="Sources and their mixture, sequence length, packing / bucketing, sharding.")
    trainable: list[str] = option(help="Selectors of the parameters that train; everything else is frozen.")
    init_from: str | None = option(None, help="Saved omni model to start from: the previous stage's "
                                              "<output_dir>/final. Exactly one of init_from and model.")
    model: str | None = option(None, help="omni_model YAML to build the model from (first stage); pretrained parts "
                                          "load from its local paths.")
    model_overrides: list[str] = option(default_factory=list, help="Dotted overrides of the model YAML, e.g. "
                                                                   "backbone.path=runs/lm/model.")
    audio_embed_from: str | None = option(
        None, help="Saved audio tokenizer whose RVQ codebooks become the audio embedding's tables (with model: "
        "only; its levels must equal codebook_sizes and audio_embed.embed_dim be at least its quantizer dim). The LLM then "
        "starts from the tokenizer's quantized vectors instead of random ones (reports/learning.md, B5).")
    projector_init: ProjectorInitConfig = option(
        default_factory=ProjectorInitConfig, help="Centre the vision projector's output on real images when the stage "
        "starts (built or loaded model): a random tower, and a projector trained under a frozen LLM, give every image "
        "nearly the same tokens, which the LLM cannot read (reports/learning.md V).")
    param_groups: list[ParamGroupConfig] = option(
        default_factory=list, help="Per-group learning rates; every trainable parameter must match exactly one "
        "group. Empty: one group 'trainable' at optim.lr.")
    optim: OptimConfig = option(default_factory=OptimConfig, help="AdamW, warm-up and schedule (lr: see param_groups).")
    loss: LossConfig = option(default_factory=LossConfig, help="Text / audio loss weights.")
    gradient_checkpointing: bool = option(False, help="Recompute the LLM's activations in the backward pass "
                                                      "(long sequences on GPU).")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()), "name", "must be set")
        check((self.init_from is None) != (self.model is None), "init_from",
              "set exactly one of init_from (a saved omni model) and model (an omni_model YAML to build)")
        check(self.audio_embed_from is None or self.model is not None, "audio_embed_from",
              "only a stage that builds its model (model:) initialises the audio embedding; a stage with init_from "
              "keeps the saved one")
        check(bool(self.trainable), "trainable", "needs at least one selector")
        names = [g.name for g in self.param_groups]
        check(len(set(names)) == len(names), "param_groups", f"group names must be unique, got {names}")


# ------------------------------------------------------------------------------------------------ freezing
@dataclass
class TrainableSetup:
    """Result of :func:`apply_trainable`.

    Attributes:
        param_groups: optimizer groups (``name``, ``params``, ``lr``, ``weight_decay``).
        counts: model group -> (trainable, total) parameter counts.
        table: the printed summary.
    """

    param_groups: list[dict[str, Any]]
    counts: dict[str, tuple[int, int]]
    table: str

    @property
    def trainable(self) -> int:
        return sum(t for t, _ in self.counts.values())

    @property
    def frozen(self) -> int:
        return sum(n - t for t, n in self.counts.values())


def select(model: nn.Module, selector: str, where: str) -> set[str]:
    """Parameter names a selector picks: a model group, ``all``, or a glob over names.

    Raises:
        ValueError: a selector that is no group and matches no parameter (a typo).
    """
    from omni.model.params import GROUPS, parameter_groups

    groups = parameter_groups(model)
    if selector == "all":
        return {name for params in groups.values() for name, _ in params}
    if selector in GROUPS:
        return {name for name, _ in groups[selector]}
    names = {name for params in groups.values() for name, _ in params}
    hits = {n for n in names if fnmatch.fnmatchcase(n, selector)}
    if not hits:
        raise ValueError(f"{where}: '{selector}' is neither a parameter group ({', '.join(GROUPS)}, all) nor a pattern "
                         "matching any parameter name")
    return hits


def apply_trainable(model: nn.Module, trainable: list[str], groups: list[ParamGroupConfig], optim: OptimConfig,
                    verbose: bool = True) -> TrainableSetup:
    """Freeze everything but ``trainable`` and put every trainable parameter in exactly one learning-rate group.

    Matrices decay with the group's weight decay; biases and norm weights (1-D) go to a ``<group>.no_decay``
    sub-group without decay.

    Raises:
        ValueError: a trainable parameter that matches no group, or two groups; a group that only matches
            frozen parameters; an unknown selector; embeddings and a tied LM head split between frozen and trained.
    """
    from omni.model.params import lm_head_tied, parameter_groups

    by_group = parameter_groups(model)
    params = {name: p for plist in by_group.values() for name, p in plist}
    chosen: set[str] = set()
    for sel in trainable:
        chosen |= select(model, sel, "trainable")
    if lm_head_tied(model) and len({"embeddings", "lm_head"} & set(trainable)) == 1:
        raise ValueError("trainable: the LM head is tied to the input embeddings (one tensor): list both "
                         "'embeddings' and 'lm_head', or neither")
    for name, p in params.items():
        p.requires_grad_(name in chosen)
    specs = groups or [ParamGroupConfig(name="trainable", match=["all"], lr=optim.lr)]
    members: dict[str, list[str]] = {g.name: [] for g in specs}
    matched = {g.name: set().union(*(select(model, s, f"param_groups '{g.name}'") for s in g.match)) for g in specs}
    for name in sorted(chosen):
        hits = [g.name for g in specs if name in matched[g.name]]
        if not hits:
            raise ValueError(f"parameter '{name}' is trainable but matches no entry of param_groups "
                             f"({', '.join(members)}); add a selector for it")
        if len(hits) > 1:
            raise ValueError(f"parameter '{name}' matches two param_groups ({hits[0]}, {hits[1]}); each trainable "
                             "parameter needs exactly one learning rate")
        members[hits[0]].append(name)
    out: list[dict[str, Any]] = []
    for g in specs:
        if matched[g.name] and not members[g.name]:
            raise ValueError(f"param_groups '{g.name}' matches only frozen parameters; add them to trainable or drop "
                             "the group")
        decay = g.weight_decay if g.weight_decay is not None else optim.weight_decay
        mats = [params[n] for n in members[g.name] if params[n].dim() >= 2]
        vecs = [params[n] for n in members[g.name] if params[n].dim() < 2]
        if mats:
            out.append({"name": g.name, "params": mats, "lr": g.lr, "weight_decay": decay})
        if vecs:
            out.append({"name": g.name if not mats else f"{g.name}.no_decay", "params": vecs, "lr": g.lr,
                        "weight_decay": 0.0})
    counts = {}
    for group, plist in by_group.items():
        n = sum(p.numel() for _, p in plist)
        counts[group] = (sum(p.numel() for name, p in plist if name in chosen), n)
    lines = [f"{'group':<18}{'trainable':>14}{'frozen':>14}"]
    lines += [f"{g:<18}{t:>14,}{n - t:>14,}" for g, (t, n) in counts.items()]
    total_t, total = sum(t for t, _ in counts.values()), sum(n for _, n in counts.values())
    lines.append(f"{'all':<18}{total_t:>14,}{total - total_t:>14,}")
    lines += [f"lr group {g['name']}: {sum(p.numel() for p in g['params']):,} parameters, lr {g['lr']:g}, "
              f"weight decay {g['weight_decay']:g}" for g in out]
    setup = TrainableSetup(out, counts, "\n".join(lines))
    if verbose:
        print(setup.table)
    return setup


# ------------------------------------------------------------------------------------------------ running
@dataclass
class StageRun:
    """Outcome of :func:`train_stage`: the loop's result, the final model directory (None if stopped early)
    and the trained model (this process's copy)."""

    result: TrainResult
    final_dir: Path | None
    model: nn.Module


def is_model_dir(path: str | Path) -> bool:
    """A complete ``save_pretrained`` directory (saves are atomic, so the config file means complete)."""
    return (Path(path) / "omni_config.json").is_file()


def load_stage_model(cfg: StageConfig):
    """The stage's starting model: ``init_from`` loaded, or built from the ``model`` YAML (its audio tables set to
    ``audio_embed_from``'s codebooks when given)."""
    from omni.config import load_config
    from omni.model import OmniModel, OmniModelConfig

    if cfg.init_from is not None:
        if not is_model_dir(cfg.init_from):
            raise FileNotFoundError(f"init_from: '{cfg.init_from}' is not a saved omni model (a finished stage writes "
                                    f"<output_dir>/{FINAL_DIR}; run the previous stage first)")
        model = OmniModel.from_pretrained(cfg.init_from)
    else:
        model = OmniModel.from_config(load_config(cfg.model, OmniModelConfig, overrides=cfg.model_overrides))
    if cfg.audio_embed_from is not None:
        from audio_tokenizer.model import AudioTokenizer

        tokenizer = AudioTokenizer.from_pretrained(cfg.audio_embed_from)
        try:
            model.audio_embed.load_codebooks(tokenizer.quantizer.codebook_vectors())
        except ValueError as e:
            raise ValueError(f"audio_embed_from '{cfg.audio_embed_from}': {e}") from None
    if cfg.projector_init.images is not None:
        start = centre_projector_on_images(model, cfg.projector_init)
        print(f"projector_init: {start.tokens} image tokens of norm {start.token_norm:.3f} (shared vector "
              f"{start.shared_norm:.3f}) centred and scaled by {start.scale:.2f} to mean norm {cfg.projector_init.norm}")
    return model


def centre_projector_on_images(model: Any, cfg: ProjectorInitConfig) -> ProjectorStart:
    """:func:`omni.model.projector_init.centre_projector` on the first ``cfg.count`` distinct images of
    ``cfg.images`` (the manifest is read only as far as those).

    Raises:
        FileNotFoundError: the manifest is missing; ValueError: the model has no vision branch, a bad line before
        enough images, or fewer than 2 images.
    """
    from omni.data.manifest import RowError, read_manifest, resolve_media
    from omni.model.projector_init import centre_projector, project_images
    from omni.model.vision_inputs import VisionProcessor

    if model.vision is None:
        raise ValueError("projector_init.images: the model has no vision branch (vision.enabled: false)")
    if not Path(cfg.images).is_file():
        raise FileNotFoundError(f"projector_init.images: '{cfg.images}' not found")
    paths: dict[Path, None] = {}  # distinct, in manifest order
    for _, row in read_manifest(cfg.images):
        if isinstance(row, RowError):
            raise ValueError(f"projector_init.images: {row.message(cfg.images)}")
        if row.image is not None:
            paths.setdefault(resolve_media(cfg.images, row.image))
            if len(paths) == cfg.count:
                break
    if len(paths) < 2:
        raise ValueError(f"projector_init.images: '{cfg.images}' has {len(paths)} rows with an image; need at least 2")
    vision = model.vision
    was_training = vision.training
    vision.eval()
    try:
        return centre_projector(vision, project_images(vision, VisionProcessor(model.cfg.vision), list(paths)),
                                cfg.norm)
    finally:
        vision.train(was_training)


def export_final(ctx: TrainContext, path: Path) -> None:
    """Write the trained model to ``path`` with ``save_pretrained`` (all processes call it: the state dict is
    gathered from FSDP / ZeRO-3 shards; the main process writes, atomically)."""
    from omni.model.save_load import save_pretrained

    acc = ctx.accelerator
    state = acc.get_state_dict(ctx.model)
    if acc.is_main_process:
        save_pretrained(acc.unwrap_model(ctx.model), path, state_dict=state)
        print(f"saved the stage's model to {path}")
    acc.wait_for_everyone()


def _report(data: Any, state: Any, run_dir: Path) -> None:
    """Print (and save as data_report.json) the per-source counts, summed over processes."""
    from accelerate.utils import reduce

    index = data.index
    rows = torch.tensor([[s.rows, s.examples, s.bad, s.too_long, s.tokens, s.seconds] for s in index.stats],
                        dtype=torch.float64, device=state.device)
    if state.num_processes > 1:
        rows = reduce(rows, reduction="sum")
    rows = rows.cpu()
    report = {"shards": index.num_shards, "sources": {}, "issues (main process)": [x.message() for x in index.issues[:50]]}
    lines = [f"{'source':<18}{'lines':>8}{'examples':>10}{'skipped':>9}{'too long':>10}{'tokens':>12}{'hours':>8}"]
    for src, r in zip(index.sources, rows.tolist()):
        report["sources"][src.name] = {"lines": int(r[0]), "examples": int(r[1]), "skipped": int(r[2]),
                                       "too_long": int(r[3]), "tokens": int(r[4]), "hours": r[5] / 3600, "ratio": src.ratio}
        lines.append(f"{src.name:<18}{int(r[0]):>8}{int(r[1]):>10}{int(r[2]):>9}{int(r[3]):>10}{int(r[4]):>12}"
                     f"{r[5] / 3600:>8.2f}")
    if state.is_main_process:
        print("\n".join(lines))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "data_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def train_stage(cfg: StageConfig) -> StageRun:
    """Train (or resume, or find finished) one stage and write its final model to ``output_dir/final``."""
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from omni.config import save_config
    from omni.data.dataset import build_stage_data
    from omni.training.checkpoint import run_complete
    from omni.training.optim import build_optimizer, build_scheduler
    from omni.training.stage_task import StageTask, evaluate_stage
    from omni.training.trainer import Trainer

    state = PartialState(cpu=cfg.loop.cpu or not torch.cuda.is_available())
    run_dir = Path(cfg.loop.output_dir)
    final = run_dir / FINAL_DIR
    set_seed(cfg.loop.seed)
    model = load_stage_model(cfg)
    model.train()
    if cfg.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    setup = apply_trainable(model, cfg.trainable, cfg.param_groups, cfg.optim, verbose=state.is_main_process)
    data = build_stage_data(cfg.data, model, cfg.loop.seed, cfg.loop.batch_size, state.process_index,
                            state.num_processes)
    _report(data, state, run_dir)
    task = StageTask(model.cfg.num_codebooks, cfg.loss.audio_weight, cfg.loss.audio_level_weights, data.health,
                     run_dir / "data_log" if cfg.data.log_examples else None, state.process_index)
    optimizer = build_optimizer(setup.param_groups, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.loop.max_steps)
    evaluate = None
    if data.dev is not None:
        evaluate = partial(evaluate_stage, dev=data.dev, batch_size=cfg.data.eval_batch_size,
                           audio_weight=cfg.loss.audio_weight, level_weights=cfg.loss.audio_level_weights)
    trainer = Trainer(cfg.loop, task, model, data.dataset, data.collate, {"main": optimizer}, {"main": scheduler},
                      evaluate=evaluate, grad_clip=cfg.optim.grad_clip, batches=data.plan)
    if trainer.acc.is_main_process and not run_complete(run_dir):
        save_config(cfg, run_dir / "config.yaml")
    on_complete = None if is_model_dir(final) else partial(export_final, path=final)
    result = trainer.fit(on_complete=on_complete)
    return StageRun(result, final if result.complete else None, trainer.acc.unwrap_model(trainer.model))


def with_init(cfg: StageConfig, init_from: str | None = None, backbone: str | None = None) -> StageConfig:
    """A copy of ``cfg`` that starts from a previous stage's model, or builds its ``model`` YAML on a warmed-up LM
    (``backbone.path`` and ``tokenizer`` set to ``backbone``)."""
    if init_from is not None:
        return dataclasses.replace(cfg, init_from=init_from, model=None)
    if cfg.model is None:
        raise ValueError(f"stage '{cfg.name}' follows a text-LM warm-up, so it builds its model: set model: to an "
                         "omni_model YAML (e.g. configs/model/tiny.yaml)")
    return dataclasses.replace(cfg, init_from=None,
                               model_overrides=[*cfg.model_overrides, f"backbone.path={backbone}", f"tokenizer={backbone}"])
