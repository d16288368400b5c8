"""The perf tools behind ``logbroker bench``: Kafka's producer-perf-test, consumer-perf-test and
end-to-end latency test, for one machine and no server.

This module is the one import for callers (the CLI, benchmarks/, tests); the tools live in

- :mod:`logbroker.tools.bench_produce`: :func:`produce_perf` (send-to-ack latency, P producer processes);
- :mod:`logbroker.tools.bench_consume`: :func:`consume_perf` (Kafka's consumer-perf columns, C consumers);
- :mod:`logbroker.tools.bench_e2e`: :func:`e2e_perf` (producer -> consumer latency across two processes);
- :mod:`logbroker.tools.bench_common`: the environment header, payloads and Kafka's percentiles.

Processes are started with multiprocessing's "spawn" method, never fork. None of these modules
imports typer; the benchmarks/ scripts and the CLI both call them.
"""

from __future__ import annotations

from .bench_common import (MB, PERCENTILES, environment, filesystem_type, format_environment, make_values,
                           median, percentiles)
from .bench_consume import CONSUME_COLUMNS, ConsumeResult, consume_perf
from .bench_e2e import E2EResult, e2e_perf
from .bench_produce import ProduceResult, produce_perf

__all__ = [
    "MB", "CONSUME_COLUMNS", "PERCENTILES", "environment", "format_environment", "filesystem_type",
    "make_values", "percentiles", "ProduceResult", "ConsumeResult", "E2EResult", "produce_perf",
    "consume_perf", "e2e_perf", "median",
]
