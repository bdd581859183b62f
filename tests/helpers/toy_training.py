"""A toy regression task for training-loop tests; also runnable under torchrun.

    torchrun --nproc_per_node 2 tests/helpers/toy_training.py OUT_DIR [max_steps] [grad_accum]

writes OUT_DIR/final-rank{r}.safetensors with every rank's final parameters.
"""

from __future__ import annotations

import os
import sys

import torch
from safetensors.torch import save_file

from omni.training.config import LoopConfig, OptimConfig
from omni.training.optim import build_optimizer, build_scheduler
from omni.training.trainer import StepOutput, Trainer


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 96, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        w = torch.randn(8, 1, generator=g)
        self.y = self.x @ w + 0.1 * torch.randn(n, 1, generator=g)
        # a variable number of loss units per example, so normalisation matters
        self.units = 1 + torch.arange(n) % 3

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i].repeat(int(self.units[i])), int(self.units[i])


def collate(items):
    x = torch.stack([it[0] for it in items])
    ys = [it[1] for it in items]
    y = torch.nn.utils.rnn.pad_sequence(ys, batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(t)) for t in ys], batch_first=True)
    return {"x": x, "y": y, "mask": mask}


class ToyModel(torch.nn.Module):
    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


class ToyTask:
    phases = ("main",)

    def __init__(self, on_call=None):
        self.calls = 0
        self.on_call = on_call

    def batch_weight(self, batch) -> float:
        return float(batch["mask"].sum())

    def compute_loss(self, model, batch, phase) -> StepOutput:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        pred = model(batch["x"])  # (B, 1)
        err = ((pred - batch["y"]) ** 2 * batch["mask"]).sum()
        return StepOutput(loss=err, sums={"sq_err": err.detach()}, stats={"batch": float(len(batch["x"]))})


def make_trainer(out_dir, max_steps=12, grad_accum=1, batch_size=12, save_every=4, task=None, dropout=0.1,
                 accelerator=None, seed=0, **loop):
    torch.manual_seed(seed)
    model = ToyModel(dropout)
    loop = LoopConfig(output_dir=str(out_dir), max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
                      save_every=save_every, log_every=2, keep_checkpoints=2, progress=False, seed=seed, **loop)
    optim = OptimConfig(lr=0.05, warmup_steps=2, schedule="cosine")
    opt = build_optimizer(model.parameters(), optim)
    sched = build_scheduler(opt, optim, max_steps)
    return Trainer(loop, task or ToyTask(), model, ToyData(), collate, {"main": opt}, {"main": sched},
                   grad_clip=1.0, accelerator=accelerator)


def final_params(trainer) -> dict[str, torch.Tensor]:
    model = trainer.acc.unwrap_model(trainer.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    out = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    accum = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    trainer = make_trainer(out, max_steps=steps, grad_accum=accum, dropout=0.0)
    trainer.fit()
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.contiguous() for k, v in final_params(trainer).items()}, os.path.join(out, f"final-rank{rank}.safetensors"))
