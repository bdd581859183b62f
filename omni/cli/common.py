"""Shared CLI plumbing: turning user-facing errors into one clear line and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from omni.audio.io import AudioError
from omni.config import ConfigError
from omni.training.checkpoint import CheckpointWriteError
from omni.training.nonfinite import NonFiniteError

F = TypeVar("F", bound=Callable[..., Any])

#: Errors caused by the user's input: printed as one line, exit code 2, no traceback.
USER_ERRORS = (ConfigError, AudioError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError,
               CheckpointWriteError)
#: A run that cannot go on (it diverged): one line naming where, exit code 1; what is on disk is intact.
RUN_ERRORS = (NonFiniteError,)


def user_errors(fn: F) -> F:
    """Decorator for commands: user-input errors print ``error: ...`` and exit with code 2, a diverged run (NaN/inf)
    prints one line and exits with code 1.

    Under a launcher, the process group a command joined (accelerate's state, kept by the stages of a pipeline for
    each other) is destroyed when the command ends: left to interpreter exit, gloo's worker threads can abort the
    process (``terminate called without an active exception``) after all the work is done."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except RUN_ERRORS as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None
        finally:
            end_process_group()

    return wrapper  # type: ignore[return-value]


def end_process_group() -> None:
    """Destroy the default process group if this process joined one; a no-op otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def echo_table(rows: list[tuple], headers: tuple[str, ...], file: Any = None) -> None:
    """Print a small left-aligned text table."""
    cells = [tuple(str(c) for c in r) for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = file or sys.stdout
    for r in cells:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)
