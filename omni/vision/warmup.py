"""Vision-tower warm-up (``omni train vision CONFIG``): the NaViT tower trained to name what its images show.

The 7B recipe starts from Qwen2-VL's pretrained tower; the tiny recipe has none on disk, and a random
tower does not see what the image questions ask: a linear probe on the tiny recipe's projector output
tells the shapes apart at 42% (a fresh random tower: 46%; chance 20%), and no LLM stage can read what is
not there. Warmed up on 6000 images the probe reads 89% (reports/learning.md, "Session 16"). This step stands in for the missing pretraining: the tower and its 2x2
merger (the projector) learn, with one linear head per attribute on an image's projected tokens, the
labels an image set records for each image (the synthetic set's ``meta``: scene, colour, shape, count,
position, digit).

The result, ``<output_dir>/model``, is a Qwen2-VL checkpoint directory (``config.json`` with a
``vision_config``, ``visual.*`` tensors), so a model config loads it exactly as it loads Qwen2-VL's tower:
``vision.path: <output_dir>/model``. The heads stay in the run's checkpoints; ``labels.json`` lists the
classes each head learned.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from omni.config import check, option
from omni.integrity import write_checksums
from omni.model.tiny import tiny_vision
from omni.model.vision import VisionBranch, VisionConfig, vision_hf_config
from omni.training.config import LoopConfig, OptimConfig
from omni.training.trainer import StepOutput, TrainContext, TrainResult
from omni.vision.losses import IGNORE, label_loss

MODEL_DIR = "model"
LABELS_FILE = "labels.json"


@dataclass
class VisionWarmupConfig:
    """``omni train vision``: which tower, which labelled images, how long."""

    train_manifests: list[str] = option(help="Image manifests whose rows carry ``image`` and ``meta`` labels "
                                        "(e.g. the synthetic set's image_caption_train.jsonl).")
    loop: LoopConfig = option(help="Steps, batch (images), checkpoints; the tower is saved to output_dir/model.")
    dev_manifests: list[str] = option(default_factory=list, help="Image manifests that measure each head's accuracy.")
    attributes: list[str] = option(
        default_factory=lambda: ["scene", "color", "shape", "count", "position", "digit"],
        help="Keys of each row's meta that the heads learn; a row whose meta lacks a key (or holds null) has no "
        "label for it.")
    image_size: int = option(112, help="Every image is resized to this square, so each has the same tokens for "
                             "the heads; a multiple of vision.patch_size x vision.spatial_merge_size.")
    projector_width: int = option(128, help="Width of the projector's output tokens: the hidden size of the LLM "
                                  "that will read them (a model keeps the projector only when they match).")
    vision: VisionConfig = option(default_factory=tiny_vision, help="The tower's sizes and patching; with "
                                  "vision.path, a pretrained Qwen2-VL tower to continue training.")
    optim: OptimConfig = option(default_factory=lambda: OptimConfig(lr=2e-3, warmup_steps=50, weight_decay=0.01),
                                help="AdamW and its schedule.")

    def __post_init__(self) -> None:
        check(bool(self.train_manifests), "train_manifests", "needs at least one manifest")
        check(bool(self.attributes), "attributes", "needs at least one meta key")
        check(len(set(self.attributes)) == len(self.attributes), "attributes", "lists a key twice")
        factor = self.vision.merge_factor
        check(self.image_size >= factor and self.image_size % factor == 0, "image_size",
              f"must be a positive multiple of patch_size x spatial_merge_size = {factor}, got {self.image_size}")
        check(self.projector_width >= 1, "projector_width", "must be >= 1")


@dataclass
class ImageSample:
    """One image: ``pixel_values`` (P, C * temporal_patch * patch^2) patches, ``grid_thw`` (3,), ``labels`` (A,)."""

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    labels: torch.Tensor


@dataclass
class ImageBatch:
    """Images of one size, their patches laid end to end as the NaViT tower takes them.

    Attributes:
        pixel_values: (B * P, C * temporal_patch * patch^2) every image's patches, image after image.
        grid_thw: (B, 3) patches along time, height, width of each image.
        labels: (B, A) class of each attribute, ``IGNORE`` where an image has none.

    Example (2 images of 112 x 112, patch 14, attributes [shape, digit]; image 0 three squares, image 1 the
    digit 6): pixel_values (128, 1176), grid_thw [[1, 8, 8], [1, 8, 8]], labels [[2, IGNORE], [IGNORE, 6]].
    """

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    labels: torch.Tensor


def collate_images(samples: list[ImageSample]) -> ImageBatch:
    """Stack :class:`ImageSample` s into an :class:`ImageBatch`."""
    return ImageBatch(torch.cat([s.pixel_values for s in samples]), torch.stack([s.grid_thw for s in samples]),
                      torch.stack([s.labels for s in samples]))


def read_labelled_images(manifests: list[str], attributes: list[str]) -> list[tuple[Path, dict[str, str]]]:
    """Each distinct image of the manifests with its attributes' values (as strings), rows without any dropped."""
    from omni.data.manifest import load_manifest, resolve_media

    seen: dict[Path, dict[str, str]] = {}
    for manifest in manifests:
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"{manifest}: manifest not found")
        for row in load_manifest(manifest):
            if not row.image:
                continue
            values = {a: str(row.meta[a]) for a in attributes if row.meta and row.meta.get(a) is not None}
            path = resolve_media(manifest, row.image)
            if values and path not in seen:
                seen[path] = values
    return list(seen.items())


class LabelledImages(torch.utils.data.Dataset):
    """Images resized to one square, patched by the tower's processor, with each attribute's class index."""

    def __init__(self, items: list[tuple[Path, dict[str, str]]], classes: dict[str, list[str]], image_size: int,
                 vision: VisionConfig):
        from omni.model.vision_inputs import VisionProcessor

        if not items:
            raise ValueError("no labelled images (rows need an image and at least one attribute in meta)")
        self.items, self.classes, self.size = items, classes, image_size
        self.processor = VisionProcessor(vision)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> ImageSample:
        from PIL import Image

        path, values = self.items[i]
        with Image.open(path) as im:
            image = im.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        inputs = self.processor.images([image])
        labels = [self.classes[a].index(values[a]) if values.get(a) in self.classes[a] else IGNORE
                  for a in self.classes]
        return ImageSample(inputs.pixel_values, inputs.grid_thw[0], torch.tensor(labels, dtype=torch.long))


def label_classes(items: list[tuple[Path, dict[str, str]]], attributes: list[str]) -> dict[str, list[str]]:
    """The classes of each attribute seen in the training images (sorted); an attribute seen nowhere is an error."""
    classes = {a: sorted({v[a] for _, v in items if a in v}) for a in attributes}
    missing = [a for a, c in classes.items() if not c]
    if missing:
        raise ValueError(f"attributes {missing}: no training image has them in its meta")
    return classes


class LabelledTower(nn.Module):
    """The vision branch (tower + merger) with a linear head per attribute on an image's flattened tokens.

    Args:
        branch: the :class:`~omni.model.vision.VisionBranch` being trained.
        tokens: projected tokens per image (fixed by the image size).
        classes: attribute -> its class names.
    """

    def __init__(self, branch: VisionBranch, tokens: int, classes: dict[str, list[str]]):
        super().__init__()
        self.branch, self.tokens = branch, tokens
        width = branch.config.hidden_size
        self.heads = nn.ModuleDict({a: nn.Linear(tokens * width, len(c)) for a, c in classes.items()})

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B * P, patch dim) patches, (B, 3) grids -> attribute -> (B, C_attribute) logits."""
        feats = self.branch(pixel_values, grid_thw)  # (B * tokens, D)
        feats = feats.reshape(grid_thw.shape[0], -1)  # (B, tokens * D)
        return {a: head(feats) for a, head in self.heads.items()}


class WarmupTask:
    """:class:`~omni.training.trainer.TrainTask` of the warm-up: loss units are labelled (image, attribute) pairs."""

    phases = ("main",)

    def __init__(self, attributes: list[str]):
        self.attributes = attributes

    def batch_weight(self, batch: ImageBatch) -> float:
        return float((batch.labels != IGNORE).sum())

    def compute_loss(self, model: nn.Module, batch: ImageBatch, phase: str) -> StepOutput:
        out = label_loss(model(batch.pixel_values, batch.grid_thw), batch.labels, self.attributes)
        sums = {f"loss/{a}": nll.detach() for a, (nll, _) in out.per_attribute.items()}
        counts = {f"loss/{a}": n for a, (_, n) in out.per_attribute.items()}
        return StepOutput(loss=out.total, sums=sums, denominators=counts)


@torch.no_grad()
def evaluate_heads(model: nn.Module, ctx: TrainContext, data: LabelledImages, batch_size: int) -> dict[str, float]:
    """Each head's accuracy on the dev images (``acc/<attribute>``) and their mean, sharded over processes."""
    acc = ctx.accelerator
    attributes = list(data.classes)
    totals = torch.zeros(len(attributes), 2, dtype=torch.float64, device=acc.device)  # (A, [right, labelled])
    mine = list(range(acc.process_index, len(data), acc.num_processes))
    was_training = model.training
    model.eval()
    for start in range(0, len(mine), batch_size):
        batch = collate_images([data[i] for i in mine[start:start + batch_size]])
        logits = model(batch.pixel_values.to(acc.device), batch.grid_thw.to(acc.device))
        labels = batch.labels.to(acc.device)
        for a, name in enumerate(attributes):
            known = labels[:, a] != IGNORE
            totals[a, 0] += (logits[name].argmax(-1)[known] == labels[known, a]).sum()
            totals[a, 1] += known.sum()
    model.train(was_training)
    totals = acc.reduce(totals, reduction="sum")
    out = {f"acc/{a}": float(totals[i, 0] / totals[i, 1]) for i, a in enumerate(attributes) if totals[i, 1] > 0}
    if out:
        out["acc/mean"] = sum(out.values()) / len(out)
    return out


def build_tower(cfg: VisionWarmupConfig) -> VisionBranch:
    """The branch to train: the configured sizes at random, or ``vision.path``'s pretrained tower."""
    branch = VisionBranch(vision_hf_config(cfg.vision, cfg.projector_width))
    if cfg.vision.path:
        branch.load_pretrained(cfg.vision.path)
    return branch


def save_tower(branch: VisionBranch, classes: dict[str, list[str]], out: Path) -> None:
    """Write ``branch`` as a Qwen2-VL checkpoint directory (``vision.path`` loads it), atomically."""
    from safetensors.torch import save_file
    from transformers import Qwen2VLConfig

    width = branch.config.hidden_size
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # the text half of the config is a placeholder (no text weights are saved): AutoConfig needs one
    text = dict(hidden_size=width, intermediate_size=width, num_hidden_layers=1, num_attention_heads=1,
                num_key_value_heads=1, vocab_size=16, bos_token_id=None, eos_token_id=None)
    Qwen2VLConfig(vision_config=branch.config.to_dict(), text_config=text).save_pretrained(str(tmp))
    state = {f"visual.{k}": v.detach().contiguous().cpu() for k, v in branch.tower.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    (tmp / LABELS_FILE).write_text(json.dumps(classes, indent=1))
    write_checksums(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)


@dataclass
class WarmupRun:
    """Outcome of :func:`train_vision`: the trainer's result and the saved tower (None while unfinished)."""

    result: TrainResult
    model_dir: Path | None
    classes: dict[str, list[str]] = field(default_factory=dict)


def train_vision(cfg: VisionWarmupConfig) -> WarmupRun:
    """Train (or resume) the tower with its heads; save the tower to ``<output_dir>/model``."""
    from functools import partial

    from accelerate import PartialState
    from accelerate.utils import set_seed

    from omni.training.export import fit_for_export
    from omni.training.optim import build_optimizer, build_scheduler
    from omni.training.trainer import Trainer

    state = PartialState(cpu=cfg.loop.cpu or not torch.cuda.is_available())
    run_dir = Path(cfg.loop.output_dir)
    train_items = read_labelled_images(cfg.train_manifests, cfg.attributes)
    classes = label_classes(train_items, cfg.attributes)
    data = LabelledImages(train_items, classes, cfg.image_size, cfg.vision)
    dev_items = read_labelled_images(cfg.dev_manifests, cfg.attributes) if cfg.dev_manifests else []
    dev = LabelledImages(dev_items, classes, cfg.image_size, cfg.vision) if dev_items else None
    set_seed(cfg.loop.seed)
    branch = build_tower(cfg)
    tokens = (cfg.image_size // cfg.vision.merge_factor) ** 2
    model = LabelledTower(branch, tokens, classes)
    state.print(f"{len(data)} training images, {len(dev) if dev else 0} dev images; "
                + ", ".join(f"{a} {len(c)}" for a, c in classes.items()) + " classes; "
                f"{sum(p.numel() for p in branch.parameters()):,} tower parameters")
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.loop.max_steps)
    evaluate = partial(evaluate_heads, data=dev, batch_size=cfg.loop.batch_size) if dev else None
    trainer = Trainer(cfg.loop, WarmupTask(list(classes)), model, data, collate_images, {"main": optimizer},
                      {"main": scheduler}, evaluate=evaluate, grad_clip=cfg.optim.grad_clip)
    model_dir = run_dir / MODEL_DIR
    fit = fit_for_export(trainer, cfg, model_dir / "config.json")
    if not fit.result.complete:
        return WarmupRun(fit.result, None, classes)
    if not fit.write_export:
        return WarmupRun(fit.result, model_dir, classes)
    if trainer.acc.is_main_process:
        save_tower(trainer.acc.unwrap_model(trainer.model).branch, classes, model_dir)
        state.print(f"saved the vision tower to {model_dir} (vision.path)")
    return WarmupRun(fit.result, model_dir, classes)
