"""Feasibility: the tiny vision tower trained on the image set's labels (shape, count, colour, position, digit, scene
from the caption rows' meta), heads on the projector output's tokens flattened; then the linear probe."""
import sys, json, time, torch, torch.nn as nn, torch.nn.functional as F
from omni.model import OmniModel
from omni.model.vision import VisionBranch
from omni.model.vision_inputs import VisionProcessor
from omni.eval.vision_probe import probe_vision
import os
ROOT = os.environ.get("ROOT", "runs/tiny")  # a finished recipe run: its images and its DPO model
R = f"{ROOT}/images"
steps, lr = int(sys.argv[1]), float(sys.argv[2])
omni = OmniModel.from_pretrained(f"{ROOT}/dpo/final")
torch.manual_seed(0)
v = VisionBranch(omni.vision.config)
proc = VisionProcessor(omni.cfg.vision)
rows = [json.loads(l) for l in open(f"{R}/image_caption_train.jsonl")]
keys = ["scene", "color", "shape", "count", "position", "digit"]
vocab = {k: sorted({str(r["meta"][k]) for r in rows if r["meta"][k] is not None}) for k in keys}
y = torch.tensor([[vocab[k].index(str(r["meta"][k])) if r["meta"][k] is not None else -100 for k in keys] for r in rows])
inp = proc.images([f"{R}/{r['image']}" for r in rows])
P = inp.pixel_values.view(len(rows), -1, inp.pixel_values.shape[-1])  # (N, patches, dim): one size
grid = inp.grid_thw[:1]
ntok = 16; D = omni.vision.config.hidden_size
heads = nn.ModuleDict({k: nn.Linear(ntok * D, len(vocab[k])) for k in keys})
opt = torch.optim.AdamW(list(v.parameters()) + list(heads.parameters()), lr=lr, weight_decay=0.01)
t0 = time.time()
for s in range(steps):
    idx = torch.randint(0, len(rows), (32,))
    pv = P[idx].reshape(-1, P.shape[-1])
    feats = v(pv, grid.repeat(32, 1)).view(32, -1)
    loss = sum(F.cross_entropy(heads[k](feats), y[idx, i], ignore_index=-100) for i, k in enumerate(keys))
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 100 == 0: print(s, round(loss.item(), 3), round(time.time() - t0, 1), flush=True)
print("train s", round(time.time() - t0, 1))
res = probe_vision(v.eval(), proc, f"{R}/image_qa_train.jsonl", f"{R}/image_qa_test.jsonl")
print({k: round(a, 3) for k, a in res.accuracy.items()})
if len(sys.argv) > 3:  # save as a Qwen2-VL checkpoint directory: vision.path can load it
    from pathlib import Path
    from safetensors.torch import save_file
    from transformers import Qwen2VLConfig
    out = Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True)
    Qwen2VLConfig(vision_config=v.config.to_dict(), hidden_size=v.config.hidden_size, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, intermediate_size=64, vocab_size=16).save_pretrained(out)
    save_file({f"visual.{k}": t.contiguous() for k, t in v.tower.state_dict().items()}, str(out / "model.safetensors"))
    print("saved", out)
