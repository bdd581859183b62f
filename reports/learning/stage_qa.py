"""Which stage teaches or erases what? Text and image answer accuracy of each stage's model.

Greedy answers (the eval_text_qa / eval_image_qa protocol, :func:`omni.eval.qa.evaluate_qa`) of every named
stage's ``final`` model to the held-out text questions and image questions, one table row per stage, with the
image accuracy per question kind. Run from the repository root after the tiny recipe (about 10 s a model):

    python reports/learning/stage_qa.py runs/tiny image_text_pretrain_2 audio_pretrain_2 multimodal_sft
    python reports/learning/stage_qa.py runs/tiny runs/exp/itp2_balanced/final     (a path is used as it is)
    python reports/learning/stage_qa.py --pref runs/tiny multimodal_sft dpo   (+ the DPO goal's right-answer rate)

``--pref`` adds the right-answer rate on the held-out preference prompts (the eval_pref_sft / eval_pref_dpo
protocol); ``--spoken`` adds spoken QA (the eval_spoken_qa protocol: 443 test questions heard as codes).
Writes each evaluation under ``<root>/stage_qa/<stage>/{text,image,pref,spoken}`` and prints a Markdown table.
"""
import sys
from pathlib import Path

from omni.eval.qa import QaEvalConfig, evaluate_qa

KINDS = ("color", "count", "digit", "position", "shape")


def model_of(root: Path, stage: str) -> Path:
    """``stage`` as a path when it is a directory, else ``<root>/<stage>/final``."""
    path = Path(stage)
    return path if path.is_dir() else root / stage / "final"


def main(root: str, stages: list[str], pref: bool = False, spoken: bool = False) -> None:
    base = Path(root)
    text_cfg = QaEvalConfig(speech_in=False, group_by="category")
    image_cfg = QaEvalConfig(speech_in=False)
    print("| model | text QA | image QA | " + " / ".join(KINDS) + " |" + (" preference prompts |" if pref else "")
          + (" spoken QA |" if spoken else ""))
    print("|---|---:|---:|---|" + ("---:|" if pref else "") + ("---:|" if spoken else ""))
    for stage in stages:
        model = model_of(base, stage)
        out = base / "stage_qa" / model.as_posix().strip("/").replace("/", "_")
        text = evaluate_qa(text_cfg, base / "corpus" / "text_test.jsonl", model, out / "text")
        image = evaluate_qa(image_cfg, base / "images" / "image_qa_test.jsonl", model, out / "image")
        kinds = " / ".join(f"{100 * image['by_group'].get(k, {}).get('accuracy', 0.0):.1f}" for k in KINDS)
        right = ""
        if pref:
            rate = evaluate_qa(image_cfg, base / "corpus" / "preference_dev.jsonl", model, out / "pref")
            right = f" {100 * rate['totals']['accuracy']:.1f}% |"
        if spoken:
            heard = evaluate_qa(QaEvalConfig(speech_in=True, max_rows=443),
                                base / "corpus" / "spoken_qa_test.codes.jsonl", model, out / "spoken")
            right += f" {100 * heard['totals']['accuracy']:.1f}% |"
        print(f"| {stage} | {100 * text['totals']['accuracy']:.1f}% | {100 * image['totals']['accuracy']:.1f}% "
              f"| {kinds} |{right}", flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--pref", "--spoken")]
    if len(args) < 2:
        sys.exit(__doc__)
    main(args[0], args[1:], pref="--pref" in sys.argv[1:], spoken="--spoken" in sys.argv[1:])
