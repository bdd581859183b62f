"""Diagnostic: run `omni eval ...` with every trained vocoder replaced by Griffin-Lim (32 iterations)."""
import sys
import torch
import decoders.vocoder as V
from decoders.griffin_lim import GriffinLimVocoder

class GL:
    def __init__(self, cfg):
        self.cfg = cfg
        self.gl = GriffinLimVocoder(cfg.mel, n_iter=32)
    def eval(self): return self
    def fold_weight_norm(self): return self
    def to(self, d): return self
    def __call__(self, mel): return self.gl(mel)

orig = V.HiFiGANVocoder.from_pretrained.__func__
def fake(cls, path, *a, **k):
    return GL(orig(cls, path, *a, **k).cfg)
V.HiFiGANVocoder.from_pretrained = classmethod(fake)
from omni.cli.main import app
sys.argv = ["omni"] + sys.argv[1:]
app()
