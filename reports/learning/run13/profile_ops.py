"""Where an LLM stage step goes, by operator: torch.profiler over a few forward + backward + optimizer steps of
a stage config (the recipe's audio_pretrain_2 by default), from a finished run's model.

usage (in the clone of a finished full run, data/corpus and data/images linked to runs/tiny's):
  python reports/learning/run13/profile_ops.py configs/stages/tiny/audio_pretrain_2_vision.yaml \
      init_from=runs/tiny/audio_pretrain_1/final loop.batch_size=16
"""
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from omni.config import load_config
from omni.data.dataset import build_stage_data
from omni.training.optim import build_optimizer
from omni.training.stage import StageConfig, apply_trainable, load_stage_model
from omni.training.stage_task import StageTask

cfg = load_config(sys.argv[1], StageConfig, overrides=sys.argv[2:])
torch.manual_seed(0)
model = load_stage_model(cfg)
model.train()
setup = apply_trainable(model, cfg.trainable, cfg.param_groups, cfg.optim, verbose=False)
t = time.perf_counter()
data = build_stage_data(cfg.data, model, cfg.loop.seed, cfg.loop.batch_size, 0, 1)
print(f"build_stage_data {time.perf_counter() - t:.1f} s")
task = StageTask(model.cfg.num_codebooks, cfg.loss.audio_weight, cfg.loss.audio_level_weights, data.health, None, 0)
opt = build_optimizer(setup.param_groups, cfg.optim)
loader = torch.utils.data.DataLoader(data.dataset, batch_sampler=data.plan.micro_batches(0, 100, 0, 1, 1), collate_fn=data.collate)
it = iter(loader)
batches = [next(it) for _ in range(12)]
print("tokens per batch", [b.num_tokens for b in batches[:4]], "positions", [b.num_positions for b in batches[:4]], "frames", [int(b.frame_example.numel()) for b in batches[:4]])


def step(b):
    opt.zero_grad(set_to_none=True)
    out = task.compute_loss(model, b, "main")
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()


for b in batches[:2]:
    step(b)
t = time.perf_counter()
for b in batches[2:7]:
    step(b)
print(f"step {(time.perf_counter() - t) / 5:.3f} s (threads {torch.get_num_threads()})")
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches[7:12]:
        step(b)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=15))
