"""The root ``logbroker`` command: the Typer app, its global ``--data-dir`` option, and :func:`main`,
the one place where errors become a message on stderr and an exit code.

Exit codes: 0 on success, 1 for a failure of the library or the system, 2 for bad input (usage
errors included), 3 for corruption found by ``inspect --verify`` or left alone by ``recover``, 130
after Ctrl+C. A :class:`~logbroker.errors.LogBrokerError` carries its own code
(:attr:`~logbroker.errors.LogBrokerError.exit_code`); the commands raise, never exit, except through
``typer.Exit`` for the codes above that are not errors of the library.

The commands themselves are registered on :data:`app` by :mod:`logbroker.cli`, in the order
``--help`` lists them.
"""

# No `from __future__ import annotations`: typer reads every command's annotations at start-up, and
# string annotations are eval'ed one by one.
import os
import sys
from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.options import PLAIN
from logbroker.cli.output import err, stdout_gone, stdout_if_raised_here
from logbroker.cli.target import ELSEWHERE, ENV_DATA_DIR, state
from logbroker.cli.typer_plain import plain_command

__all__ = ["app", "main"]

app = typer.Typer(
    help="logbroker: a durable, append-only log broker backed by plain files (Kafka's model, no server).",
    add_completion=True,
    pretty_exceptions_enable=False,
    **PLAIN,
)


@app.callback()
def _main(
    data_dir: Annotated[Optional[str], typer.Option(
        "--data-dir", envvar=ENV_DATA_DIR, show_envvar=True,
        help="Data directory holding the topics (default: ./segments).")] = None,
) -> None:
    """logbroker: topics, partitions, offsets, consumer groups, replay and retention in plain files.

    Example: logbroker generate 10 | logbroker publish orders
    """
    state.data_dir = data_dir


def _terminated(signum: int, frame: object) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt  # SIGTERM ends a command as Ctrl+C does: commits, summaries, clean close


_TERMINATED: list[int] = []


def main() -> None:
    """Run the app, turning library errors into one line on stderr and an exit code. SIGTERM is
    handled as Ctrl+C (``serve`` and ``mirror`` set their own handlers), exiting 143."""
    import signal
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _main()
    except SystemExit as exc:
        if _TERMINATED and exc.code in (None, 0, 130):
            sys.exit(128 + _TERMINATED[0])
        raise
    if _TERMINATED:  # a command that ends quietly on Ctrl+C (consume) still says it was terminated
        sys.exit(128 + _TERMINATED[0])


def _main() -> None:
    try:
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = plain_command(app)(prog_name="logbroker", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except errors.LogBrokerError as exc:
        hint = ""
        if isinstance(exc, (errors.UnknownTopicError, errors.UnknownGroupError, errors.DataDirError)) \
                and "does not exist" in str(exc) and state.cluster is None:
            from logbroker.storage.datadir import data_dir_path
            path = os.path.abspath(data_dir_path(state.data_dir))
            hint = f" ({ELSEWHERE})" if path in str(exc) else f" (data directory {path}; {ELSEWHERE})"
        err(f"error: {exc}{hint}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        stdout_gone()
        sys.exit(0)
    except Exception as exc:  # click usage errors
        # Recent typer vendors click (typer._click), so match the class by name, not by import.
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called with no command: its help
            err(exc.format_message())
            sys.exit(exc.exit_code)
        if any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message()
            if message:  # empty when the help was printed instead (a group called with no command)
                err(f"error: {message}{hint}")
            sys.exit(exc.exit_code)
        if isinstance(exc, OSError):
            where = exc.filename or stdout_if_raised_here(exc)
            err(f"error: {exc.strerror or exc}" + (f": {where}" if where else ""))
            sys.exit(1)
        raise
