"""What the command line prints and how it ends: messages on stderr, results on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gis.errors import ComputeUnavailable, DatabaseError, GridmapError

#: The exit codes every command keeps (README "Command line", `gridmap --help`).
EXIT_OK = 0
EXIT_BAD_INPUT = 1      # the input (a file, an option's value, an id) is wrong: fix it
EXIT_USAGE = 2          # the command line itself is wrong (click's own code)
EXIT_UNAVAILABLE = 3    # the database or the Dask cluster cannot be reached: try again later

EXIT_CODES_HELP = (
    "Exit codes 退出码: 0 ok 成功; 1 bad input 输入有误 (a file, a value, an id: the message "
    "says what to fix); 2 usage 用法错误 (an unknown option, a missing argument); 3 "
    "unavailable 服务不可用 (the database or the Dask cluster cannot be reached; try again). "
    "Results go to stdout, messages and progress to stderr. Commands that report figures take "
    "--json (one JSON document on stdout) and --quiet (nothing but errors).")

QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing but errors (no progress, no messages, no table).")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the figures as one JSON document on stdout (messages stay on "
                   "stderr).")]


class Output:
    """Where a command's words go: ``say``/``status``/``bar`` on stderr (silent when quiet),
    ``result`` on stdout (a rich table, or with ``--json`` one JSON document)."""

    def __init__(self, *, quiet: bool = False, as_json: bool = False) -> None:
        self.quiet = quiet
        self.as_json = as_json
        # Consoles look up sys.stdout/sys.stderr when they print, so a test's capture works.
        self.out = Console(quiet=quiet and not as_json)
        self.err = Console(stderr=True, soft_wrap=True, quiet=quiet)

    def say(self, text: Any) -> None:
        """A message (text, a table) for the person at the terminal (stderr)."""
        self.err.print(text, highlight=False)

    def status(self, text: str) -> AbstractContextManager[Any]:
        """A spinner while one step runs (stderr; none when quiet or not on a terminal)."""
        if self.quiet or not self.err.is_terminal:
            return nullcontext()
        return self.err.status(text)

    def bar(self) -> Progress:
        """A progress bar on stderr that disappears when done (nothing when quiet)."""
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=self.err, transient=True,
                        disable=self.quiet)

    def result(self, figures: dict[str, Any], *shown: Any) -> None:
        """The command's result: ``figures`` as JSON with ``--json``, else ``shown`` (tables,
        lines) on stdout; nothing with ``--quiet`` alone."""
        if self.as_json:
            sys.stdout.write(json.dumps(figures, ensure_ascii=False, default=_plain) + "\n")
            sys.stdout.flush()
            return
        for item in shown:
            self.out.print(item, highlight=False)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, anything else (paths, times) as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def one_line(text: str) -> str:
    """A message on one line (GDAL's reasons may span several)."""
    return " ".join(text.split())


def fail(err: Console, text: str, code: int) -> NoReturn:
    err.print(f"[bold red]错误 error:[/] {escape(one_line(text))}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn what a user can fix or wait for into one line on stderr and an exit code (1 bad
    input, 3 unavailable), never a traceback (errors print even with --quiet)."""
    err = Console(stderr=True, soft_wrap=True)
    from sqlalchemy.exc import SQLAlchemyError

    from gis.database import is_unavailable

    try:
        yield
    except (DatabaseError, ComputeUnavailable) as exc:
        fail(err, exc.message, EXIT_UNAVAILABLE)
    except GridmapError as exc:
        fail(err, exc.message, EXIT_BAD_INPUT)
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        fail(err, f"数据库无法连接 the database cannot be reached: "
                  f"{getattr(exc, 'orig', None) or exc}", EXIT_UNAVAILABLE)
    except OSError as exc:  # a folder where a file belongs, no permission, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        fail(err, where + (exc.strerror or str(exc)), EXIT_BAD_INPUT)

