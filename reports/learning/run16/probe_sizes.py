"""Random vision towers of several sizes: does a wider / finer tower's projector output show shape and count?"""
import sys, torch, dataclasses, json
from omni.model import OmniModel
from omni.model.vision import VisionBranch, vision_hf_config
from omni.model.vision_inputs import VisionProcessor
from omni.eval.vision_probe import probe_vision
import os
ROOT = os.environ.get("ROOT", "runs/tiny")  # a finished recipe run: its images and its DPO model
R = f"{ROOT}/images"
omni = OmniModel.from_pretrained(f"{ROOT}/dpo/final")
base = omni.cfg.vision
for spec in sys.argv[1:]:
    kw = json.loads(spec)
    cfg = dataclasses.replace(base, **kw)
    torch.manual_seed(0)
    v = VisionBranch(vision_hf_config(cfg, 64)).eval()
    n = sum(p.numel() for p in v.parameters())
    res = probe_vision(v, VisionProcessor(cfg), f"{R}/image_qa_train.jsonl", f"{R}/image_qa_test.jsonl")
    print(spec, n, {k: round(a, 3) for k, a in res.accuracy.items()}, flush=True)
