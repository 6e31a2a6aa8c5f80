"""One error boundary for every ``synthscan`` command.

Expected failures (an unreadable or unwritable file or folder, a corrupt study, a bad config value,
a dataset that breaks the contract) become a one-line :class:`click.ClickException` that names the
file or option and says how to fix it; ``synthscan -v`` also prints the traceback. Before a command
runs, every dataset it reads is checked quickly (each study file exists with its recorded size and
opens), so a damaged study stops the command before it writes anything, and a command that is not
resumable removes the output it created when it fails. SIGTERM unwinds like Ctrl-C, so dataset
writers persist their manifests before the process ends.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import select
import shutil
import signal
import sys
import threading
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import click

VERBOSE = "synthscan.verbose"
"""``ctx.meta`` key of the ``-v`` flag (shared by every context of one invocation)."""

RESUMABLE = frozenset(
    {
        "simulate",
        "sample",
        "augment",
        "train",
        "distill",
        "finetune",
        "import-dicom",
        "import-public",
        "evaluate augmentation",
        "export-dicom",
    }
)
"""Commands whose partial output is a consistent state that rerunning completes: kept on failure."""

NOT_RESUMABLE_WITH: Mapping[str, str] = MappingProxyType({"export-dicom": "dicomdir"})
"""A flag that makes a resumable command write its output at once (a File-set needs a new folder)."""

UNCHECKED = frozenset({"check"})
"""Commands that read damaged datasets on purpose."""

EXPECTED: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    ImportError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)
"""Failures a user can cause and fix; anything else is a bug and keeps its traceback."""

_HINTS = {
    errno.EACCES: "choose a folder you may write to (or read from), or change its permissions",
    errno.EPERM: "choose a folder you may write to (or read from), or change its permissions",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOSPC: "the disk is full; free space or write somewhere else",
    errno.EDQUOT: "the disk quota is exhausted; free space or write somewhere else",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "give a file name, not a folder",
}


def describe(error: BaseException) -> str:
    """One line for an expected failure: what, which file, and how to fix it."""
    if isinstance(error, OSError) and error.filename is not None:
        hint = _HINTS.get(error.errno or 0, "")
        what = error.strerror or type(error).__name__
        return f"cannot use {error.filename}: {what}" + (f" ({hint})" if hint else "")
    if isinstance(error, ImportError):
        return f"{error}; install the missing package (pip install 'synthscan[test]' has them all)"
    if isinstance(error, EOFError | zipfile.BadZipFile | zlib.error):
        return f"a file is truncated or corrupt ({error}); rerun with -v to see which"
    if isinstance(error, RuntimeError | MemoryError) and _out_of_memory(error):
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        return (
            f"out of memory ({first}); lower the batch size where the command has one (--batch-size, or "
            "a config's batch_size with --set), use fewer studies at once, or a machine with more memory"
        )
    text = str(error) or type(error).__name__
    return text if _raised_by_synthscan(error) else f"{text} ({type(error).__name__}; -v shows the traceback)"


def _raised_by_synthscan(error: BaseException) -> bool:
    """Whether synthscan itself raised ``error`` (its messages are written for users) or a library did."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("synthscan")


def run_guarded(ctx: click.Context, call: Callable[[], Any]) -> Any:
    """``call()`` with expected failures turned into one-line ClickExceptions and SIGTERM into an exit."""
    with _sigterm_unwinds():
        try:
            return call()
        except (click.Abort, click.exceptions.Exit):
            raise
        except click.ClickException:
            if ctx.meta.get(VERBOSE):
                _print_traceback()
            raise
        except BrokenPipeError as error:  # the reader of stdout left (`synthscan info --card | head`)?
            if not _stdout_closed():
                raise click.ClickException(describe(error)) from error
            raise click.exceptions.Exit(1) from None
        except (*EXPECTED, RuntimeError, MemoryError) as error:
            if not isinstance(error, EXPECTED) and not _out_of_memory(error):
                raise
            if ctx.meta.get(VERBOSE):
                _print_traceback()
            raise click.ClickException(describe(error)) from error


def _out_of_memory(error: BaseException) -> bool:
    """numpy's MemoryError, or torch's allocators' RuntimeError (CUDA's is a subclass)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or any(
        sign in text for sign in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone (its pipe polls as an error); if so stdout now points at
    /dev/null, so the flush at exit does not fail a second time (a quiet stop, as ``cat`` makes)."""
    try:
        stdout = sys.stdout.fileno()
        poller = select.poll()
        poller.register(stdout, select.POLLERR)
        if not any(events & select.POLLERR for _, events in poller.poll(0)):
            return False
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (CliRunner), or no poll (Windows)
        return False
    return True


def guarded(command: click.Command, name: str) -> click.Command:
    """``command`` with the dataset checks and the output cleanup of this module around its body."""
    shim = copy.copy(command)

    def invoke(ctx: click.Context) -> Any:
        if name not in UNCHECKED:
            verify_inputs(ctx)
        created = [] if _resumable(name, ctx) else _new_outputs(ctx)
        try:
            return command.invoke(ctx)
        except BaseException as error:
            if not (isinstance(error, click.exceptions.Exit) and error.exit_code == 0):
                for path in created:
                    _remove(path)
            raise

    shim.invoke = invoke  # type: ignore[method-assign]
    return shim


def _resumable(name: str, ctx: click.Context) -> bool:
    """Whether command ``name``, as invoked in ``ctx``, keeps its partial output on failure."""
    return name in RESUMABLE and not ctx.params.get(NOT_RESUMABLE_WITH.get(name, ""), False)


def verify_inputs(ctx: click.Context) -> None:
    """Refuse to run when a dataset among the command's existing-path arguments has damaged studies."""
    from synthscan.dataset import INFO, Dataset, DatasetError

    for param in ctx.command.params:
        if not (isinstance(param.type, click.Path) and param.type.exists):
            continue
        value = ctx.params.get(param.name or "")
        for path in value if isinstance(value, tuple | list) else [value]:
            if not path or not (Path(path) / INFO).is_file():
                continue
            dataset = Dataset.open(path)
            broken = dataset.broken(quick=True)
            if broken:
                first = next(iter(broken.values()))
                raise DatasetError(
                    f"{path}: {len(broken)} of {len(dataset)} study files are damaged ({first}); nothing was "
                    f"written. `synthscan check {path}` lists them; `--remove-broken` drops them so that "
                    "rerunning the command that wrote them (simulate, sample, augment, import) restores them"
                )


def _new_outputs(ctx: click.Context) -> list[Path]:
    """The outermost folder or file that ``--out`` will create (it does not exist yet)."""
    value = ctx.params.get("out")
    if not value or Path(value).exists():
        return []
    top = Path(value).absolute()
    while not top.parent.exists():
        top = top.parent
    return [top]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM raises SystemExit(143): ``with`` blocks (dataset writers) close."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_traceback() -> None:
    click.echo(traceback.format_exc().rstrip(), err=True)
