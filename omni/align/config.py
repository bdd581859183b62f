"""``omni train dpo CONFIG`` (kind ``dpo``): the preference-alignment stage.

Like a training stage (:mod:`omni.training.stage`) it declares where the policy starts (``init_from``:
the SFT model), what trains (``trainable`` + ``param_groups``, or LoRA adapters), the schedule and the
loop; instead of a data mixture it reads preference manifests, and it adds the loss and the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.align.data import PreferenceDataConfig
from omni.align.reference import ReferenceConfig
from omni.align.replay import ReplayConfig
from omni.config import check, option
from omni.training.config import LoopConfig, OptimConfig
from omni.training.stage import ParamGroupConfig

REFERENCE_FREE = ("simpo", "orpo")


@dataclass
class PreferenceLossConfig:
    """Which preference loss, and its hyper-parameters."""

    type: Literal["dpo", "ipo", "simpo", "orpo", "kto"] = option(
        "dpo", help="dpo (sigmoid), ipo, simpo (reference-free, length-normalised, margin gamma), orpo (NLL + "
        "odds ratio, reference-free), kto (unpaired desirable / undesirable completions).")
    beta: float = option(0.1, help="β: DPO / IPO / KTO inverse temperature (0.1-0.5), SimPO reward scale (2-2.5), "
                                   "ORPO's λ (weight of the odds-ratio term, 0.1).")
    label_smoothing: float = option(0.0, help="dpo / simpo: probability that a preference label is flipped (cDPO).")
    gamma: float = option(0.5, help="simpo: target reward margin γ (reward units).")
    sft_weight: float = option(0.0, help="dpo / ipo / simpo: add this x the chosen response's mean token NLL (RPO, "
                                         "TRL's loss_type [sigmoid, sft]); keeps the chosen likelihood from falling.")
    desirable_weight: float = option(1.0, help="kto: weight of desirable completions (λ_D).")
    undesirable_weight: float = option(1.0, help="kto: weight of undesirable completions (λ_U).")

    def __post_init__(self) -> None:
        check(self.beta > 0, "beta", f"must be > 0, got {self.beta}")
        check(0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        check(self.label_smoothing == 0 or self.type in ("dpo", "simpo"), "label_smoothing",
              f"only dpo and simpo support label smoothing, not {self.type}")
        check(self.gamma >= 0, "gamma", "must be >= 0")
        check(self.sft_weight >= 0, "sft_weight", "must be >= 0")
        check(self.sft_weight == 0 or self.type in ("dpo", "ipo", "simpo"), "sft_weight",
              f"{self.type} has its own likelihood term; sft_weight is for dpo, ipo and simpo")
        check(self.desirable_weight > 0 and self.undesirable_weight > 0, "desirable_weight", "weights must be > 0")

    @property
    def average_logps(self) -> bool:
        """SimPO and ORPO compare length-normalised (average) log-probs."""
        return self.type in REFERENCE_FREE


@dataclass
class LoraSettings:
    """LoRA adapters (peft) on the LLM's linear layers; the base weights stay frozen. The adapters are saved to
    ``output_dir/adapter`` and merged into the weights of ``output_dir/final``."""

    r: int = option(16, help="Rank of the adapters.")
    alpha: float = option(32.0, help="Scaling numerator (the update is alpha / r x B A).")
    dropout: float = option(0.0, help="Dropout on the adapters' input.")
    target_modules: list[str] = option(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        help="Names of the LLM modules that get adapters.")

    def __post_init__(self) -> None:
        check(self.r >= 1, "r", "must be >= 1")
        check(self.alpha > 0, "alpha", "must be > 0")
        check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        check(bool(self.target_modules), "target_modules", "needs at least one module name")


@dataclass
class DPOConfig:
    """``omni train dpo``: preference alignment (DPO, IPO, SimPO, ORPO, KTO) of an SFT model."""

    name: str = option(help="Stage name (logs).")
    init_from: str = option(help="Saved omni model to align (the SFT stage's <output_dir>/final); also the reference.")
    loop: LoopConfig = option(help="Steps, global batch (pairs), accumulation, checkpoints, evaluation.")
    data: PreferenceDataConfig = option(help="Preference manifests and how rows become examples.")
    trainable: list[str] = option(
        default_factory=lambda: ["llm", "embeddings", "lm_head", "audio_embed", "audio_head"],
        help="Selectors of the parameters that train (groups, 'all' or globs); with lora, '*lora_*' selects the "
        "adapters.")
    param_groups: list[ParamGroupConfig] = option(default_factory=list, help="Per-group learning rates (empty: one "
                                                                            "group at optim.lr).")
    optim: OptimConfig = option(default_factory=OptimConfig, help="AdamW and schedule (DPO: small rates, 5e-7-5e-6 "
                                                                  "for full fine-tuning of large models).")
    loss: PreferenceLossConfig = option(default_factory=PreferenceLossConfig, help="The preference loss.")
    reference: ReferenceConfig = option(default_factory=ReferenceConfig, help="Frozen copy, disabled adapters or "
                                                                              "cached log-probs.")
    lora: LoraSettings | None = option(None, help="Train LoRA adapters on the LLM instead of (or besides) full weights.")
    gradient_checkpointing: bool = option(False, help="Recompute the LLM's activations in the backward pass.")
    replay: ReplayConfig | None = option(
        None, help="Rows of a stage mixture trained beside the pairs each step (e.g. ASR, so a DPO on text questions "
        "does not cost the hearing; omni/align/replay.py); null: the pairs alone.")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()), "name", "must be set")
        check(bool(self.trainable), "trainable", "needs at least one selector")
        free = self.loss.type in REFERENCE_FREE
        check(free == (self.reference.mode == "none"), "reference.mode",
              f"loss '{self.loss.type}' is reference-free: set reference.mode: none" if free else
              f"loss '{self.loss.type}' needs a reference: copy, adapters or cached")
        check(self.reference.mode != "adapters" or self.lora is not None, "reference.mode",
              "'adapters' disables the LoRA adapters of the policy: set lora:")
        check(not (self.loss.type == "kto" and self.reference.mode == "cached"), "reference.mode",
              "kto's KL pairs are drawn per batch, so their reference cannot be cached: use copy or adapters")
        check(self.lora is None or any("lora" in t for t in self.trainable), "trainable",
              "with lora, list '*lora_*' (the adapters) among the trainable selectors")
