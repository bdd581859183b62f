"""Print the figures of finished recipe runs (or branches) side by side: ASR seen / held-out WER, text / image /
spoken QA, the right-answer rate before and after DPO, the TTS ratio, DPO's held-out reward accuracy and seconds.

    python reports/learning/run15/figures.py runs/tiny runs/r1 ...
"""

import json
import sys
from pathlib import Path


def totals(path: Path) -> dict | None:
    return json.loads(path.read_text())["totals"] if path.is_file() else None


def figures(root: Path) -> dict:
    out: dict = {}
    for key, step in (("asr_seen", "eval_asr_seen"), ("asr_heldout", "eval_asr_heldout")):
        t = totals(root / step / "report.json")
        out[key] = t and round(100 * t["wer"], 1)
    for key in ("text_qa", "image_qa", "spoken_qa", "pref_sft", "pref_dpo"):
        t = totals(root / f"eval_{key}" / "report.json")
        out[key] = t and round(100 * t["accuracy"], 1)
    tts = root / "eval_tts" / "report.json"
    out["tts_ratio"] = round(json.loads(tts.read_text())["wer_ratio"], 2) if tts.is_file() else None
    state = root / "dpo" / "trainer_state.json"
    metrics = json.loads(state.read_text()).get("metrics", {}) if state.is_file() else {}
    out["dpo_reward_acc"] = metrics.get("eval/rewards/accuracies") and round(metrics["eval/rewards/accuracies"], 3)
    steps = root / "pipeline_steps.json"
    seconds = {s["name"]: s["seconds"] for s in json.loads(steps.read_text())} if steps.is_file() else {}
    out["dpo_s"] = seconds.get("dpo")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg, figures(Path(arg)))
