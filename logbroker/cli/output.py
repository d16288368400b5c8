"""What the commands write, and where: results on stdout (text, JSON, records as lines),
diagnostics on stderr, and a progress line on stderr when it is a terminal.

stdout may be a pipe whose reader leaves early (``| head``): :func:`stdout_closed` notices it
without writing, :func:`stdout_gone` points stdout at the null device so the flush at exit cannot
fail, and :func:`stdout_if_raised_here` names stdout in the error line when a write of this package
to it fails (a full disk). Text is built by :mod:`logbroker.tools.render`; this module only writes.
"""

import os
import sys
import time
from typing import Optional

import typer

__all__ = ["err", "print_json", "print_names", "record_writer", "progress_enabled", "Progress",
           "stdout_gone", "stdout_closed", "stdout_if_raised_here"]


def err(message: str) -> None:
    """One diagnostic line on stderr."""
    typer.echo(message, err=True)


def print_json(obj: object) -> None:
    """``obj`` as indented JSON on stdout, flushed."""
    import orjson
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def print_names(names: list[str], json: bool, empty: str) -> None:
    """A list command's output: one name per line, or a JSON array; ``empty`` goes to stderr when
    there are no names (it says where the command looked)."""
    if json:
        print_json(names)
    else:
        for n in names:
            typer.echo(n)
    if not names:
        err(empty)


def record_writer(fmt: str, properties: Optional[dict] = None):
    """A function ``(record, n)`` writing one record to stdout in format ``fmt`` (not flushed)."""
    from logbroker.tools.render import record_formatter
    line, out = record_formatter(fmt, properties), sys.stdout.buffer
    return lambda record, n: out.write(line(record, n))


def progress_enabled() -> bool:
    """Whether progress is shown: only on a terminal's stderr."""
    return sys.stderr.isatty()


class Progress:
    """The ``\r``-rewritten progress line on a terminal's stderr (nothing when stderr is not one):
    at most twice a second, ended (erased) before anything else is printed, so the summary that
    follows starts on a clean line and never sits next to a stale count."""

    def __init__(self, verb: str) -> None:
        self.verb, self.shown, self.last = verb, 0, 0.0
        self.enabled = progress_enabled()

    def report(self, count: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            text = f"\r{self.verb} {count:,} record{'' if count == 1 else 's'}..."
            sys.stderr.write(text + " " * max(0, self.shown - len(text)))
            sys.stderr.flush()
            self.shown = len(text)

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * self.shown + "\r")
            sys.stderr.flush()
            self.shown = 0

    def above(self, message: str) -> None:
        """A message printed on its own line, the progress line erased first."""
        self.end()
        err(message)


def stdout_gone() -> None:
    """Point stdout at /dev/null once its reader has gone, so the flush at exit cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def stdout_closed() -> bool:
    """True once nobody reads stdout any more (POLLERR on the write end of a pipe whose reader exited)."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # no events asked: errors and hang-ups are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this platform, or stdout is not a file
        return False


def stdout_if_raised_here(exc: BaseException) -> Optional[str]:
    """An OSError with no file name raised by a write in this package (records, JSON, flushes of
    stdout) is a write to standard output: name where it goes, e.g. a file on a full disk."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or os.path.dirname(tb.tb_frame.f_code.co_filename) != os.path.dirname(__file__):
        return None
    try:
        return f"standard output ({os.readlink('/proc/self/fd/1')})"
    except OSError:
        return "standard output"
