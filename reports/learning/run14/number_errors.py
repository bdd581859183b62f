"""Word errors on number words and on the other words (reports/learning.md, "H").

Words are normalised as the WER is (Whisper's English normaliser: "seventy five" -> "75", one word), aligned
with jiwer, and a reference word counts as an error when its alignment chunk is not "equal".
Usage: python number_errors.py RESULTS.jsonl...  (results of `omni eval asr`, e.g. ROOT/eval_asr_seen/results.jsonl)
"""

from __future__ import annotations

import collections
import json
import sys

import jiwer

from omni.eval.normalize import normalize


def error_rates(path: str) -> tuple[float, float, int, float]:
    """(all words, number words, number-word count, other words) error rates of one results file."""
    seen: collections.Counter[str] = collections.Counter()
    wrong: collections.Counter[str] = collections.Counter()
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        ref, hyp = normalize(r["reference"], "en"), normalize(r["hypothesis"], "en")
        if not ref.strip():
            continue
        words = ref.split()
        for chunk in jiwer.process_words(ref, hyp).alignments[0]:
            for w in words[chunk.ref_start_idx:chunk.ref_end_idx]:
                seen[w] += 1
                wrong[w] += chunk.type != "equal"
    numbers = lambda c: sum(v for w, v in c.items() if w.isdigit())  # noqa: E731
    n_all, n_num = sum(seen.values()), numbers(seen)
    e_all, e_num = sum(wrong.values()), numbers(wrong)
    return e_all / n_all, e_num / max(n_num, 1), n_num, (e_all - e_num) / max(n_all - n_num, 1)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        a, num, n, other = error_rates(p)
        print(f"{p}: words {100 * a:.1f}% wrong; number words {100 * num:.1f}% of {n}; other words {100 * other:.1f}%")
