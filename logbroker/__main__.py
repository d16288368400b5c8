"""The ``logbroker`` command: the console script, ``python -m logbroker`` and the checkout's ``cli.py``.

Loading the command line (typer, click) takes a noticeable moment; a Ctrl+C in it ends the command
with exit code 130 and no traceback, as a Ctrl+C while it runs does.
"""

import sys


def main() -> None:
    """Import :mod:`logbroker.cli` and run it."""
    try:
        from logbroker.cli import main as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
