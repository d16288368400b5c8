"""What every ``logbroker bench`` tool shares: the environment header, payloads, Kafka's statistics.

- :func:`environment` is the header every tool prints first (:func:`format_environment`);
- :func:`make_values` builds the record values (orders padded or trimmed to an exact size);
- :func:`percentiles` follows Kafka: a sample of at most 500,000 latencies (every
  floor(N / min(N, 500000))-th), sorted, value at index floor(p * count);
- :func:`run_children` runs the spawned producer or consumer processes of one measurement;
- :func:`result_dict` is a result's ``--json`` object, its environment first.

Part of the perf tools behind :mod:`logbroker.tools.bench`; never imports typer.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict
from typing import Any, Sequence

import orjson

__all__ = ["MB", "PERCENTILES", "MAX_SAMPLE", "PROGRESS_WINDOW_S", "filesystem_type", "environment",
           "format_environment", "make_values", "encoded_bytes", "median", "percentiles", "latency_fields",
           "percentiles_text", "stderr_progress", "run_children", "result_dict"]

MB = 1024 * 1024  # Kafka's MB
PERCENTILES = (0.5, 0.95, 0.99, 0.999)
MAX_SAMPLE = 500_000
PROGRESS_WINDOW_S = 5.0  # Kafka reports every 5 s


# -- environment ---------------------------------------------------------------------------------

def filesystem_type(path: str) -> str:
    """The file system type of ``path`` from /proc/mounts (longest matching mount point), or "?"."""
    real = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def environment(data_dir: str, *, fsync: str | None, record_size: int | str | None,
                segment_bytes: int | None = None) -> dict[str, Any]:
    """What a reader needs to judge a figure: versions, policy, sizes, CPUs, file system."""
    if segment_bytes is None:
        from ..storage.config import TopicConfig
        segment_bytes = TopicConfig().segment_bytes
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "orjson": orjson.__version__,
        "fsync": fsync or "topic default",
        "record_size": record_size,
        "segment.bytes": segment_bytes,
        "cpus": os.cpu_count(),
        "data_dir": os.path.abspath(data_dir),
        "filesystem": filesystem_type(data_dir),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def format_environment(env: dict[str, Any]) -> str:
    size = env["record_size"]
    size = f"{size} B" if isinstance(size, int) else size
    return (f"# Python {env['python']}, orjson {env['orjson']}, fsync={env['fsync']}, record size {size}, "
            f"segment.bytes={env['segment.bytes']}, {env['cpus']} CPUs, data dir {env['data_dir']} "
            f"({env['filesystem']}), {env['platform']}")


# -- payloads ------------------------------------------------------------------------------------

def make_values(count: int, record_size: int | None = None, payload_file: str | None = None,
                seed: int = 1) -> list[Any]:
    """``count`` record values to cycle through.

    ``record_size`` B: realistic orders (:func:`logbroker.tools.generator.generate_orders`, 235-300 bytes)
    made exactly B bytes of JSON: padded with a ``pad`` field, or with the address trimmed (orders
    that cannot be trimmed enough are skipped); when no order fits, strings of B - 2 uppercase
    letters (Kafka's random payload). ``payload_file``: one value per non-empty line, the line's
    JSON when it parses, else the line as a string.
    """
    if payload_file is not None:
        values = []
        with open(payload_file, "rb") as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                try:
                    values.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    values.append(line.decode("utf-8", "replace"))
        if not values:
            raise ValueError(f"payload file {payload_file} holds no payload")
        return values
    if record_size is None or record_size < 2:
        raise ValueError("give --record-size (at least 2 bytes) or --payload-file")
    from .generator import generate_orders
    import random
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    values = []
    for order in generate_orders(count * 4, seed=seed):
        if len(values) == count:
            break
        size = len(orjson.dumps(order))
        room = record_size - size - len(',"pad":""')
        excess = size - record_size
        if room >= 0:
            order["pad"] = "".join(rng.choices(letters, k=room))
        elif 0 < excess < len(order["address"]):
            order["address"] = order["address"][:-excess]  # orders run 235-300 bytes: trim to fit
        if len(orjson.dumps(order)) == record_size:
            values.append(order)
    while len(values) < count:  # too small for an order
        values.append("".join(rng.choices(letters, k=record_size - 2)))
    return values


def encoded_bytes(values: Sequence[Any], n: int) -> int:
    """Total JSON bytes of the first ``n`` values of ``values`` cycled."""
    sizes = [len(orjson.dumps(v)) for v in values]
    whole, part = divmod(n, len(sizes))
    return whole * sum(sizes) + sum(sizes[:part])


# -- statistics ----------------------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentiles(latencies_ns: Sequence[int], ps: Sequence[float] = PERCENTILES) -> list[float]:
    """Kafka's percentiles, in ms: sample at most 500,000, sort, value at index floor(p * count)."""
    n = len(latencies_ns)
    if n == 0:
        return [0.0 for _ in ps]
    step = n // min(n, MAX_SAMPLE)
    sample = sorted(latencies_ns[::step])
    return [sample[min(int(p * len(sample)), len(sample) - 1)] / 1e6 for p in ps]


def latency_fields(lat: Sequence[int]) -> dict[str, float]:
    p50, p95, p99, p999 = percentiles(lat)
    return {"avg_latency_ms": (sum(lat) / len(lat) / 1e6) if lat else 0.0,
            "max_latency_ms": (max(lat) / 1e6) if lat else 0.0,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "p999_ms": p999}


def percentiles_text(result: Any) -> str:
    """The percentiles of a result with :func:`latency_fields`, worded as Kafka's perf tools end
    their summary line (two decimals: ours are often below 1 ms)."""
    return (f"{result.p50_ms:.2f} ms 50th, {result.p95_ms:.2f} ms 95th, {result.p99_ms:.2f} ms 99th, "
            f"{result.p999_ms:.2f} ms 99.9th.")


def result_dict(result: Any, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result as one JSON object: ``environment`` first, then ``fields`` (default: the
    dataclass's own fields)."""
    if fields is None:
        fields = {k: v for k, v in asdict(result).items() if k != "environment"}
    return {"environment": result.environment, **fields}


def stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_children(procs: list, ready, go, results, what: str) -> list:
    """Start benchmark child processes, release them together once all are ready, collect one
    result from each, and make sure none outlives the call. A result is a tuple whose last item
    is the child's error (empty when it succeeded); the first error raises RuntimeError naming
    ``what`` ("a producer process")."""
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        outs = [results.get(timeout=3600) for _ in procs]
        failures = [o[-1] for o in outs if o[-1]]
        if failures:
            raise RuntimeError(f"{what} failed: {failures[0]}")
        return outs
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
