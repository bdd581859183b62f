"""DPO step time against an SFT step on the same tokens, and against TRL's DPOTrainer on the same model.

    PYTHONPATH=. python bench/bench_dpo.py --device cpu --threads 1 [--hidden 256 --layers 4 --pairs 8 --length 96]

One optimizer step (zero_grad, forward, backward, AdamW step) of a text-only omni model (a Qwen2 backbone of
the given size) on B pairs = 2B padded rows, timed for:

* ``sft``: the stage loss (text cross-entropy summed over the response tokens) on the 2B rows;
* ``dpo live``: :class:`PreferenceTask` with a frozen-copy reference (one extra no-grad forward);
* ``dpo cached``: the same with reference log-probs read from the batch (precomputed once);
* ``trl dpo``: ``trl.DPOTrainer.compute_loss`` on the same backbone weights, token ids and reference.

The four are run round-robin (one step each per round) for ``--rounds`` rounds after a warm-up, and the
median per-step time of each is reported with its ratio to ``sft`` (and ours to TRL's). Ratios are
measured back-to-back in one process, so a loaded machine changes absolute times more than ratios.
Targets: live <= 1.35x SFT, cached <= 1.05x SFT.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

from omni.bench.timing import use_device


def build(args):
    from omni.model.tiny import tiny_model

    model = tiny_model("qwen2", seed=0, vision=False, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                       num_hidden_layers=args.layers, num_attention_heads=max(4, args.hidden // 64),
                       num_key_value_heads=2)
    return model.to(args.device).train()


def pairs(model, args):
    """B (prompt, chosen, rejected) token lists, prompts of length/3 and responses of about 2 length/3."""
    g = torch.Generator().manual_seed(0)
    vocab = len(model.tokenizer) - 40  # ordinary tokens only
    out = []
    for i in range(args.pairs):
        p = args.length // 3
        c = 2 * args.length // 3 - (i % 5)
        r = 2 * args.length // 3 - ((i + 2) % 7)
        out.append([torch.randint(3, vocab, (n,), generator=g).tolist() for n in (p, c, r)])
    return out


def omni_batch(model, data, device):
    from omni.align.data import PreferenceBatch
    from omni.model.batch import IGNORE, OmniExample, collate

    def ex(p, r):
        return OmniExample(torch.tensor(p + r), torch.tensor([IGNORE] * len(p) + r), torch.zeros(0, 8, dtype=torch.long),
                           torch.zeros(0, dtype=torch.bool))

    rows = [ex(p, c) for p, c, _ in data] + [ex(p, r) for p, _, r in data]
    return PreferenceBatch(collate(rows, model.token_ids.pad).to(device), [str(i) for i in range(len(data))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--length", type=int, default=96, help="prompt + response tokens per row")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--no-trl", action="store_true")
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return

    from omni.bench.training import preference_steps

    base = build(args)
    data = pairs(base, args)
    batch = omni_batch(base, data, args.device)
    steps = {f"dpo {k}" if k != "sft" else k: v for k, v in preference_steps(base, batch, args.pairs).items()}

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()
    if not args.no_trl:
        steps["trl dpo"] = trl_step(base, data, args)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rnd in range(args.rounds + 2):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            if rnd >= 2:  # two warm-up rounds
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = int(batch.model.attention_mask.sum())
    print(f"model: Qwen2 hidden {args.hidden}, {args.layers} layers; {args.pairs} pairs = {2 * args.pairs} rows, "
          f"{tokens} tokens; device {args.device}, threads {torch.get_num_threads()}; median of {args.rounds} steps")
    print(f"{'step':<12}{'ms/step':>10}{'x sft':>8}")
    for k, v in med.items():
        print(f"{k:<12}{1000 * v:>10.1f}{v / med['sft']:>8.3f}")
    print(f"ratios: dpo live / sft = {med['dpo live'] / med['sft']:.3f} (target <= 1.35), "
          f"dpo cached / sft = {med['dpo cached'] / med['sft']:.3f} (target <= 1.05)")
    if "trl dpo" in med:
        print(f"ours / TRL DPOTrainer (live reference): {med['dpo live'] / med['trl dpo']:.3f}")


def trl_step(base, data, args):
    """TRL's DPOTrainer.compute_loss + backward + AdamW on the same backbone, token ids and reference."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, ref = copy.deepcopy(base.backbone).train(), copy.deepcopy(base.backbone).eval()
    ds = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    out = tempfile.mkdtemp(prefix="bench_dpo_trl_")
    targs = DPOConfig(output_dir=out, beta=0.1, per_device_train_batch_size=args.pairs, report_to="none",
                      use_cpu=args.device == "cpu", bf16=False, max_length=None)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=targs, train_dataset=ds, processing_class=base.tokenizer)
    rows = [{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r} for p, c, r in data]
    inputs = {k: v.to(args.device) for k, v in trainer.data_collator(rows).items()}
    model = trainer.model.to(args.device)
    trainer.ref_model.to(args.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def step():
        opt.zero_grad(set_to_none=True)
        trainer.compute_loss(model, inputs).backward()
        opt.step()
    return step


if __name__ == "__main__":
    main()
