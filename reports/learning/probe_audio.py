"""Does the trained model use the audio? (reports/learning.md, experiments A)

Teacher-forced NLL per token of each of the first 8 training clips' transcripts under the omni recogniser's
exact ASR prompt, with the clip's own codes, the next clip's codes, and all-zero codes. A model that listens
scores own < other. Run from the repository root after the tiny recipe:

    python reports/learning/probe_audio.py runs/tiny/bundle
"""
import os
import sys
from dataclasses import replace

import torch

from omni.audio.io import load_audio
from omni.bundle import load_bundle
from omni.data.manifest import read_manifest
from omni.eval.recognizers.base import RecognizerConfig
from omni.eval.recognizers.omni_asr import OmniRecognizer
from omni.model.batch import collate


def nll(model, prompt, ref_text: str, codes: torch.Tensor) -> float:
    """Mean NLL (nats/token) of ``ref_text`` + end of text after ``prompt``, its audio frames replaced by ``codes``."""
    tk = model.tokenizer
    ref = tk.encode(ref_text, add_special_tokens=False) + [tk.eos_token_id]
    ids = torch.cat([prompt.input_ids, torch.tensor(ref)])
    labels = torch.cat([torch.full_like(prompt.input_ids, -100), torch.tensor(ref)])
    n = prompt.audio_codes.shape[0]
    fit = codes[:n] if codes.shape[0] >= n else torch.cat([codes, codes[-1:].repeat(n - codes.shape[0], 1)])
    ex = replace(prompt, input_ids=ids, labels=labels, audio_codes=fit, audio_target=torch.zeros(n, dtype=torch.bool))
    with torch.no_grad():
        out = model(collate([ex], pad_id=0))
    return float(out.text_loss.total / out.text_loss.count)


def main(bundle_dir: str, manifest: str = "runs/tiny/corpus/asr_train.jsonl", n: int = 8) -> None:
    bundle = load_bundle(bundle_dir)
    rec = OmniRecognizer(bundle, RecognizerConfig(name="omni"))
    rows = [x[-1] for x in list(read_manifest(manifest))[:n]]
    audios = [load_audio(os.path.join(os.path.dirname(manifest), r.audio), 16000) for r in rows]
    prompts = rec.prompts(audios, rows)
    model = bundle.model.eval()
    variants = {"own codes": lambda i: prompts[i].audio_codes,
                "other codes": lambda i: prompts[(i + 1) % n].audio_codes,
                "zero codes": lambda i: torch.zeros_like(prompts[i].audio_codes)}
    for name, codes_of in variants.items():
        values = [nll(model, prompts[i], rows[i].text, codes_of(i)) for i in range(n)]
        print(f"{name:12s} mean {sum(values) / n:.3f}  per clip {[round(v, 2) for v in values]}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
