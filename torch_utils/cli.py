"""What the five command-line tools share: -h, the `--res HxW` option, and the deprecation
notes of old spellings (docs/architecture.md)."""

from __future__ import annotations

import functools
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from torch_utils.misc import parse_resolution

# The vocabulary shared by the five CLIs (lvg-dataset, lvg-convert, lvg-generate, lvg-train,
# lvg-metrics): -h/--help, --out FILE, --outdir DIR, --res HxW, --frames, --seed, --device,
# --precision, --quiet.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FRAMES_HELP = "Number of frames of each video written"


def parse_res_option(ctx: click.Context, param: click.Parameter, value):
    """Click callback of every `--res HxW` (and `--lr-res`): `"36x64"` -> `(36, 64)` with
    `torch_utils.misc.parse_resolution`; a bad size is a one-line error naming the flag."""
    if value is None:
        return None
    try:
        if isinstance(value, tuple) and param.multiple:
            return tuple(parse_resolution(v) for v in value)
        return parse_resolution(value)
    except ValueError as e:
        raise click.ClickException(f"{param.opts[0]} {e}") from None


def deprecated(message: str) -> None:
    """Queue a one-line `note: ...` deprecation message; `with_deprecation_notes` prints it on
    stderr when the command succeeds (errors stay one line)."""
    click.get_current_context().meta.setdefault("lvg.deprecations", []).append(message)


def with_deprecation_notes(fn: Callable) -> Callable:
    """Command callbacks: print the queued `deprecated` notes on stderr after a successful run."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        for message in click.get_current_context().meta.pop("lvg.deprecations", []):
            click.echo(f"note: {message}", err=True)
        return result

    return wrapper


class DeprecatedArgument(click.Argument):
    """A positional argument kept for old command lines: optional, left out of the usage line."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def output_path(new_flag: str, new_value, old_name: str, old_value):
    """The value of `new_flag` (--out or --outdir), or the deprecated positional `old_name`."""
    if old_value is not None:
        if new_value is not None:
            raise click.UsageError(f"give {new_flag} only (not also a positional {old_name})")
        deprecated(f"{old_name} as a positional argument is deprecated; use {new_flag} {old_name}")
        return old_value
    if new_value is None:
        raise click.UsageError(f"Missing option '{new_flag}'.")
    return new_value


def _store_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta["lvg.quiet"] = bool(value)


quiet_option = click.option(
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=_store_quiet,
    help="No progress bars or per-tick status lines (results and errors are still printed).",
)
"""`--quiet` for commands whose callbacks do not take it as a parameter; read with `is_quiet`."""


def is_quiet() -> bool:
    """Whether the running command was given `--quiet` (via `quiet_option`)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("lvg.quiet"))


def flags_in(message: str, flags: dict[str, str] | None = None) -> str:
    """A library message for the command line: each backticked parameter name becomes its flag
    (`grad_accum` -> --grad-accum, or as `flags` says). Library code names parameters; only the
    CLIs speak of flags."""
    flags = flags or {}
    return re.sub(r"`(\w+)`", lambda m: flags.get(m[1], "--" + m[1].replace("_", "-")), message)


@contextmanager
def click_errors(*types: type[Exception], flags: dict[str, str] | None = None) -> Iterator[None]:
    """`types` raised inside become one-line click errors (exit status 1), their backticked
    parameter names turned into flags (`flags_in`)."""
    try:
        yield
    except types as e:
        raise click.ClickException(flags_in(str(e), flags)) from None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM (`kill`, a cluster scheduler, torchrun stopping its workers) like Ctrl-C:
    a `KeyboardInterrupt`, so every writer discards its temp file and nothing half-written is
    left. Called first by each CLI; a no-op outside the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
