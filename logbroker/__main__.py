"""``python -m logbroker ...``: the same command line as the installed ``logbroker`` command."""

from logbroker.cli import main

if __name__ == "__main__":
    main()
