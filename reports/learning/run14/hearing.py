"""Spoken QA against hearing and knowing (reports/learning.md, "H"): for the recipe's 443 spoken test questions,
the same questions read as text, the model's own transcript of each (eval_asr_seen: the same clips), and a
cascade (the transcript read as the question).  Usage: python hearing.py ROOT  (a finished recipe run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from omni.eval.normalize import normalize

root = Path(sys.argv[1])
diag = root / "diag"
diag.mkdir(exist_ok=True)
n = 443


def lines(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()]


def qa(manifest: Path, out: Path, *args: str) -> dict[str, bool]:
    if not (out / "results.jsonl").is_file():
        subprocess.run(["omni", "eval", "qa", str(manifest), "--checkpoint", str(root / "bundle"), "--out", str(out),
                        "--limit", str(n), *args], check=True)
    return {r["id"]: r["correct"] for r in lines(out / "results.jsonl")}


spoken = {r["id"]: r["correct"] for r in lines(root / "eval_spoken_qa" / "results.jsonl")}
text = qa(root / "corpus" / "spoken_qa_test.codes.jsonl", diag / "text_same", "--text-in")
asr = {r["id"].removeprefix("asr-"): r for r in lines(root / "eval_asr_seen" / "results.jsonl")}
rows = lines(root / "corpus" / "spoken_qa_test.jsonl")[:n]
cascade_rows = []
for row in rows:
    hyp = asr[row["id"].removeprefix("spoken_qa-")]["hypothesis"]
    reply = row["conversation"][-1]
    cascade_rows.append({**row, "task": "text",
                         "conversation": [{"role": "user", "text": hyp}, {"role": "assistant", "text": reply["text"]}]})
(diag / "cascade.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cascade_rows))
cascade = qa(diag / "cascade.jsonl", diag / "cascade", "--text-in")

ids = [r["id"] for r in rows]
heard = {i: asr[i.removeprefix("spoken_qa-")] for i in ids}
exact = {i: normalize(h["hypothesis"], "en") == normalize(h["reference"], "en") for i, h in heard.items()}


def rate(sel: list[str], table: dict[str, bool]) -> str:
    return f"{100 * sum(table[i] for i in sel) / len(sel):.1f}% of {len(sel)}" if sel else "-"


print("| questions | spoken QA | text QA (same questions) | cascade (own transcript as text) |")
print("|---|---:|---:|---:|")
for name, sel in [("all", ids), ("transcribed exactly", [i for i in ids if exact[i]]),
                  ("transcribed with errors", [i for i in ids if not exact[i]]),
                  ("right as text", [i for i in ids if text[i]])]:
    print(f"| {name} | {rate(sel, spoken)} | {rate(sel, text)} | {rate(sel, cascade)} |")
