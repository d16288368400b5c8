"""``logbroker generate`` and ``logbroker demo``: example data and a tour of the model.

``generate`` writes K-pop merchandise orders as JSON lines (one call of
:func:`logbroker.tools.generator.iter_order_lines`); ``demo`` runs the whole model with real
processes on a data directory (one call of :func:`logbroker.tools.demo.run_demo`).
"""

import sys
from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.target import state

__all__ = ["generate", "demo"]


def generate(
    n: Annotated[int, typer.Argument(help="Number of orders; 0 streams until Ctrl+C.")] = 0,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for reproducible output.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Orders per second (default: as fast as possible).")] = None,
) -> None:
    """Write K-pop merchandise orders as JSON lines to stdout.  Example: logbroker generate 10 --seed 42"""
    from logbroker.tools.generator import iter_order_lines
    if n < 0:
        raise errors.InvalidConfigError(f"N must be 0 or more, got {n}")
    if rate is not None and rate <= 0:
        raise errors.InvalidConfigError(f"--rate must be positive, got {rate}")
    out = sys.stdout.buffer
    paced = rate is not None
    for line in iter_order_lines(n or None, seed=seed, rate=rate):
        out.write(line)
        if paced:
            out.flush()
    out.flush()


def demo(orders: Annotated[int, typer.Option("--orders", help="How many orders to publish.")] = 30) -> None:
    """Show the whole model with real processes: groups split partitions, different groups fan out.

    Example: logbroker demo
    """
    from logbroker.tools.demo import run_demo
    run_demo(state.data_dir, typer.echo, orders=orders)
