"""Where a training step goes, by operator, for any `omni train ...` command: the shared Trainer's steps 10-14
run under torch.profiler (data loading excluded), then the operator table is printed and the command stops.

usage: python reports/learning/run13/profile_steps.py train tokenizer configs/tokenizer/tiny.yaml loop.output_dir=...
"""
import sys
import time

from torch.profiler import ProfilerActivity, profile

from omni.training import trainer as tr

FIRST, COUNT = 10, 5
_step = tr.Trainer._train_step
state = {"t": None, "prof": None}


def traced(self, micro, step=0):
    if step == FIRST - 5:
        state["t"] = time.perf_counter()
    if step == FIRST:
        print(f"steps {FIRST - 5}-{FIRST - 1}: {(time.perf_counter() - state['t']) / 5:.3f} s a step with data loading")
        state["prof"] = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
        state["prof"].__enter__()
    out = _step(self, micro, step)
    if step == FIRST + COUNT - 1:
        prof = state["prof"]
        prof.__exit__(None, None, None)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6 / COUNT
        print(f"profiled: {total:.3f} s of operator time a step")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=12))
        sys.exit(0)
    return out


tr.Trainer._train_step = traced
from omni.cli.main import app  # noqa: E402

sys.argv = ["omni", *sys.argv[1:]]
app()
