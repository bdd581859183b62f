"""The benchmark harness core: figures, goals, the run context, the registry and the runner.

A benchmark is a function ``fn(ctx: BenchContext) -> list[Figure]``, registered under a name with
:func:`register`. Every figure is a *ratio against a reference measured in the same run* (a peer
implementation, the machine's measured ceiling, or another mode of our own code), so load changes on a
shared machine move absolute times more than the ratios. Each figure may carry the issue's goal
(``Goal(">=", 1.0)``); the report marks it met / not met from the measured ratio.

    ctx = BenchContext(BenchConfig(device="cpu"))
    results = run_benchmarks(["ceilings", "decode"], ctx)   # ceilings always first
"""

from __future__ import annotations

import math
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from omni.config import check, option


@dataclass
class BenchConfig:
    """What to run and on what (the ``omni bench`` options)."""

    device: str = option("cpu", help="cpu or cuda; cuda with no GPU present marks every benchmark skipped.")
    threads: int = option(1, help="torch intra-op CPU threads (0: torch's default). 1 by default: on a shared "
                          "machine, OpenMP threads waiting for busy cores distort small ops far more than one thread.")
    repeats: int = option(3, help="Timed repeats per measurement (medians are reported).")
    quick: bool = option(False, help="Smallest sizes and one repeat: a plumbing check of the harness, not figures.")

    def __post_init__(self) -> None:
        check(self.device in ("cpu", "cuda"), "device", f"must be cpu or cuda, got {self.device!r}")
        check(self.threads >= 0, "threads", "must be >= 0")
        check(self.repeats >= 1, "repeats", "must be >= 1")


@dataclass(frozen=True)
class Goal:
    """A target on a figure's ratio: ``ratio op target`` (op is ``>=`` or ``<=``)."""

    op: str
    target: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"goal op must be '>=' or '<=', got {self.op!r}")

    def met(self, ratio: float) -> bool:
        return ratio >= self.target if self.op == ">=" else ratio <= self.target

    def __str__(self) -> str:
        return f"{self.op} {self.target:g}"


@dataclass
class Figure:
    """One measured figure: ``value`` (ours) against ``reference`` measured in the same run.

    ``ratio`` is ``value / reference`` unless ``inverse`` (then ``reference / value``: e.g. speed from
    times); ``per`` names what the ratio means in words. ``value`` alone (reference None) is a plain
    figure (e.g. a count) whose ratio is itself.
    """

    name: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    goal: Goal | None = None
    inverse: bool = False
    note: str = ""
    skipped: str = ""

    @property
    def ratio(self) -> float:
        if self.skipped:
            return math.nan
        if self.reference is None:
            return self.value
        if self.inverse:
            return self.reference / self.value if self.value else math.inf
        return self.value / self.reference if self.reference else math.inf

    @property
    def met(self) -> bool | None:
        return None if self.goal is None or self.skipped else self.goal.met(self.ratio)

    def to_json(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit, "reference": self.reference,
                "reference_name": self.reference_name, "ratio": self.ratio,
                "goal": None if self.goal is None else str(self.goal), "met": self.met, "note": self.note,
                "skipped": self.skipped}


@dataclass
class BenchResult:
    """One benchmark's outcome: its figures, wall seconds, and why it was skipped or failed (else '')."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""
    error: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "seconds": self.seconds, "skipped": self.skipped, "error": self.error,
                "figures": [f.to_json() for f in self.figures]}


class Skip(Exception):
    """Raised by a benchmark (or a part of one) that cannot run here, with the reason."""


@dataclass
class Ceilings:
    """The machine's measured limits: copy bandwidth (bytes/s, read + write) and GEMM FLOP/s in ``dtype``."""

    bandwidth: float
    matmul_flops: float
    dtype: str


class BenchContext:
    """What every benchmark gets: the config, the device, the working dtype, the measured ceilings."""

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.dtype = torch.bfloat16 if cfg.device == "cuda" else torch.float32
        self.ceilings: Ceilings | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def repeats(self) -> int:
        return 1 if self.cfg.quick else self.cfg.repeats

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> float:
        """Wall seconds of one call of ``fn`` (synchronised on a GPU)."""
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t0

    def machine(self) -> dict:
        info = {"device": self.cfg.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(), "dtype": str(self.dtype).replace("torch.", "")}
        if self.cuda:
            info["gpu"] = torch.cuda.get_device_name()
        try:
            import os

            info["load_average"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            pass
        return info


Bench = Callable[[BenchContext], list[Figure]]

#: name -> (module, function), imported lazily so ``omni bench ceilings`` does not import every model.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "ceilings": ("omni.bench.ceilings", "bench_ceilings", "memory bandwidth (large copy) and GEMM throughput"),
    "decode": ("omni.bench.decode", "bench_decode", "batch-1 decode vs transformers generate() and the bandwidth bound"),
    "streaming": ("omni.bench.streaming", "bench_streaming", "LLM steps and time to the first audio chunk"),
    "speech_decoder": ("omni.bench.speech", "bench_speech_decoder", "flow decoder / vocoder RTF, streamed vs whole"),
    "tokenizer": ("omni.bench.tokenizer", "bench_tokenizer", "audio tokenizer encode throughput vs transformers"),
    "training": ("omni.bench.training", "bench_training", "packing vs padding, DPO vs SFT, MFU on a GPU"),
    "evaluation": ("omni.bench.evaluation", "bench_evaluation", "batched vs one-by-one ASR evaluation"),
    "plan": ("omni.bench.plan", "bench_plan", "seconds and FLOPs per training step of each component at a few sizes"),
}


def resolve(name: str) -> Bench:
    import importlib

    if name not in REGISTRY:
        raise ValueError(f"unknown benchmark {name!r} (known: {', '.join(REGISTRY)})")
    module, fn, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), fn)


def run_benchmarks(names: list[str] | None, ctx: BenchContext, log: Callable[[str], None] = print) -> list[BenchResult]:
    """Run the ceilings first, then ``names`` (all when None or empty), each in this process.

    A benchmark that raises :class:`Skip` is recorded as skipped; one that fails is recorded with its
    error and the rest still run (a harness that stops at the first failure reports nothing).
    """
    names = list(names or REGISTRY)
    for n in names:
        resolve(n)  # unknown names fail before anything runs
    if ctx.cfg.threads and not ctx.cuda:
        torch.set_num_threads(ctx.cfg.threads)
    order = ["ceilings"] + [n for n in names if n != "ceilings"]
    results = []
    for name in order:
        res = BenchResult(name)
        t0 = time.perf_counter()
        log(f"== {name}: {REGISTRY[name][2]}")
        try:
            if ctx.cfg.device == "cuda" and not torch.cuda.is_available():
                raise Skip("--device cuda: no CUDA device on this machine")
            res.figures = resolve(name)(ctx)
        except Skip as e:
            res.skipped = str(e)
        except Exception as e:  # noqa: BLE001 - recorded in the report, the other benchmarks still run
            res.error = f"{type(e).__name__}: {e}"
            log(traceback.format_exc())
        res.seconds = time.perf_counter() - t0
        for f in res.figures:
            log("   " + format_figure(f))
        if res.skipped or res.error:
            log(f"   {'skipped' if res.skipped else 'FAILED'}: {res.skipped or res.error}")
        log(f"   ({res.seconds:.1f} s)")
        results.append(res)
    return results


def format_figure(f: Figure) -> str:
    if f.skipped:
        return f"{f.name}: skipped ({f.skipped})"
    ref = f" vs {f.reference_name} {f.reference:.4g}" if f.reference is not None else ""
    goal = "" if f.goal is None else f"  goal {f.goal}: {'met' if f.met else 'NOT met'}"
    return f"{f.name}: {f.value:.4g} {f.unit}{ref} -> ratio {f.ratio:.3f}{goal}"
