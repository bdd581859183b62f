"""build_optimizer: AdamW, fused where the config (or CUDA) says, with the same update either way."""

from __future__ import annotations

import torch

from omni.training.config import OptimConfig
from omni.training.optim import build_optimizer


def _one_step(cfg: OptimConfig) -> tuple[torch.optim.AdamW, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4)
    opt = build_optimizer(layer.parameters(), cfg)
    layer(torch.randn(16, 8)).square().mean().backward()
    opt.step()
    return opt, layer.weight.detach()


def test_fused_follows_the_config_and_updates_like_the_plain_kernel():
    auto, _ = _one_step(OptimConfig(lr=1e-2, weight_decay=0.1))
    assert bool(auto.defaults["fused"]) == torch.cuda.is_available()  # null: fused only where CUDA is
    fused, w_fused = _one_step(OptimConfig(lr=1e-2, weight_decay=0.1, fused=True))
    plain, w_plain = _one_step(OptimConfig(lr=1e-2, weight_decay=0.1, fused=False))
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    torch.testing.assert_close(w_fused, w_plain, atol=1e-6, rtol=1e-5)
    assert not torch.equal(w_plain, _one_step(OptimConfig(lr=2e-2, weight_decay=0.1, fused=True))[1])  # lr is used
