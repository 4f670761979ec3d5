"""The Typer app every command module registers on, the consoles, and the one-sentence error handling.

Importing this never imports torch: heavy imports happen inside the commands that need them.
"""

from __future__ import annotations

import dataclasses
import errno
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from mgc_edge import __version__
from mgc_edge.errors import TRAIN_INSTALL, UserError

app = typer.Typer(
    name="mgc-edge",
    help="Micro-gesture image classifier: train, export (with a parity gate) and run on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: Rich markup would swallow the defaults written in square brackets
    # ("Epochs [30].") and make `[default: ...]` depend on the renderer; click's own layout shows them all.
    rich_markup_mode=None,
)
console = Console(stderr=True)  # messages, tables, progress
# The one machine-readable result of a command (a path, a JSON line): printed as it is, never wrapped at the
# terminal's (or a pipe's 80) columns, never read as markup, so that `| tail -n 1 | python -m json.tool` works.
stdout = Console(soft_wrap=True, markup=False, emoji=False, highlight=False)

# Top-level modules of the `[train]` extra: a command that needs one, run on an edge-only install, says so.
TRAIN_EXTRA = frozenset({"torch", "torchvision", "onnx", "onnxscript", "matplotlib"})
# The machine's, not ours: a disk that filled up or went read-only mid-run, a quota, a failing drive.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


@contextmanager
def user_errors(command: str = "this command") -> Iterator[None]:
    """Errors a user can cause end in one sentence and exit code 2, never a traceback."""
    try:
        yield
    except UserError as exc:
        fail(str(exc))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        fail(f"`mgc-edge {command}` needs the training extra ({exc.name} is not installed): {TRAIN_INSTALL}.")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        fail(f"`mgc-edge {command}` stopped{where}: {exc.strerror or exc}; what was written before is kept.")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, systemctl stop, kill, timeout) ends the command as Ctrl-C does: a live run closes
    its video and JSONL and prints its summary, annotate removes its unfinished files. Python's default for
    SIGTERM is to die at once, leaving outputs under their temporary names (an mp4 without its index)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail(sentence: str, code: int = 2) -> None:
    """Print one error sentence and exit."""
    console.print(f"[bold red]error:[/] {escape(sentence)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def given(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace with only the options the user actually gave (None = not given)."""
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if v is not None})


def parse_size(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '112x200' -> (112, 200) as (H, W)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise UserError(f"--size must be N or HxW (e.g. 224 or 112x200), got {text!r}.") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise UserError(f"--size must be N or HxW (e.g. 224 or 112x200), got {text!r}.")
    return parts[0], parts[1]


def _version(value: bool) -> None:
    if value:
        stdout.print(f"mgc-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Micro-gesture image classifier: train, export (with a parity gate) and run on the edge."""
