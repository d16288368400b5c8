"""Run the logbroker command line from a checkout: ``python cli.py topics list``.

The app lives in :mod:`logbroker.cli` (the installed ``logbroker`` command and ``python -m logbroker``
run the same one); this file only lets a checkout run it without installing anything.
"""

from logbroker.cli import app, main  # noqa: F401  (app: for tools that look for it here)

if __name__ == "__main__":
    main()
