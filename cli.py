"""Run the logbroker command line from a checkout: ``python cli.py topics list``.

The app lives in :mod:`logbroker.cli`; the installed ``logbroker`` command, ``python -m logbroker``
and this file all start it through :func:`logbroker.__main__.main`. This file only lets a checkout
run it without installing anything.
"""

from logbroker.__main__ import main

if __name__ == "__main__":
    main()
