"""The performance harness behind ``omni bench``: the machine's ceilings, then every benchmark in one
process, each figure a ratio against a reference measured in the same run, each goal marked met / not met.

Library code: the scripts under ``bench/`` import from here, never the other way round.
"""

from omni.bench.core import (
    REGISTRY,
    BenchConfig,
    BenchContext,
    BenchResult,
    Ceilings,
    Figure,
    Goal,
    Skip,
    run_benchmarks,
)
from omni.bench.report import summary, write_json, write_markdown

__all__ = ["REGISTRY", "BenchConfig", "BenchContext", "BenchResult", "Ceilings", "Figure", "Goal", "Skip",
           "run_benchmarks", "summary", "write_json", "write_markdown"]
