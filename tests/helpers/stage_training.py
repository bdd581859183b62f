"""Run one training stage (also under torchrun) and save every rank's final parameters.

    torchrun --nproc_per_node 2 tests/helpers/stage_training.py CONFIG OUT_DIR [overrides...]

writes OUT_DIR/final-rank{r}.safetensors (each rank's trained weights) next to the run's own files.
"""

from __future__ import annotations

import os
import sys

import torch
from safetensors.torch import save_file

from omni.config import load_config
from omni.training.stage import StageConfig, train_stage

if __name__ == "__main__":
    torch.set_num_threads(1)
    config, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    cfg = load_config(config, StageConfig, overrides=[*overrides, f"loop.output_dir={out}"])
    run = train_stage(cfg)
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.detach().contiguous().clone() for k, v in run.model.state_dict().items()}  # clones: no sharing
    save_file(state, os.path.join(out, f"final-rank{rank}.safetensors"))
