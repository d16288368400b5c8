"""The logbroker command line: a thin shell over the ``logbroker`` library.

Each command parses its options, makes one library call and renders the result: records to stdout
as JSON lines, diagnostics to stderr. Errors from the library become one line on stderr and a
non-zero exit code (2 for bad input, 3 for corruption found by ``inspect --verify``, 1 otherwise).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, List, Optional

import typer


from logbroker import errors
from logbroker.broker import Broker, ENV_DATA_DIR

app = typer.Typer(
    help="logbroker: a durable, append-only log broker backed by plain files (Kafka's model, no server).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create, list, describe, alter and delete topics (like kafka-topics).",
                         no_args_is_help=True)
app.add_typer(topics_app, name="topics")


class _State:
    data_dir: Optional[str] = None


state = _State()


def broker() -> Broker:
    return Broker(state.data_dir)


def err(message: str) -> None:
    typer.echo(message, err=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def print_json(obj: object) -> None:
    import orjson
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


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


# -- topics ------------------------------------------------------------------------------------

@topics_app.command("create")
def topics_create(
    name: Annotated[str, typer.Argument(help="Topic name: letters, digits, '.', '_' and '-'.")],
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="Number of partitions.")] = 3,
    config: Annotated[Optional[List[str]], typer.Option(
        "--config", "-c", help="Topic config key=value (segment.bytes, retention.ms, fsync, ...).")] = None,
) -> None:
    """Create a topic.  Example: logbroker topics create orders --partitions 3 --config retention.ms=86400000"""
    from logbroker.config import parse_config_pairs
    t = broker().create_topic(name, partitions, parse_config_pairs(config or []))
    err(f"Created topic {t.name} with {t.partitions} partitions.")


@topics_app.command("list")
def topics_list(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List topics.  Example: logbroker topics list"""
    names = broker().list_topics()
    if json:
        print_json(names)
    else:
        for n in names:
            typer.echo(n)


@topics_app.command("describe")
def topics_describe(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Partitions, offsets, segments, sizes and config of a topic.  Example: logbroker topics describe orders"""
    info = broker().describe_topic(name)
    if json:
        print_json(info)
        return
    cfg = ",".join(f"{k}={v}" for k, v in info["config"].items())
    typer.echo(f"Topic: {info['topic']}\tPartitionCount: {info['partitions']}\tConfigs: {cfg}")
    rows = [[p["partition"], p["log_start_offset"], p["log_end_offset"], p["records"], len(p["segments"]),
             _size(p["size"])] for p in info["partition_details"]]
    print_table(["PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "RECORDS", "SEGMENTS", "SIZE"], rows)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@topics_app.command("alter")
def topics_alter(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    config: Annotated[Optional[List[str]], typer.Option("--config", "-c", help="Config key=value to set.")] = None,
    partitions: Annotated[Optional[int], typer.Option("--partitions", help="New (larger) partition count.")] = None,
) -> None:
    """Change a topic's config or grow its partitions.  Example: logbroker topics alter orders --config retention.ms=3600000"""
    from logbroker.config import parse_config_pairs
    t = broker().alter_topic(name, parse_config_pairs(config or []), partitions)
    err(f"Altered topic {t.name}: {t.partitions} partitions, config {t.config.to_kafka()}")
    if partitions is not None:
        err("Note: keyed records may now map to different partitions (as in Kafka).")


@topics_app.command("delete")
def topics_delete(name: Annotated[str, typer.Argument(help="Topic name.")]) -> None:
    """Delete a topic with all its records and committed offsets.  Example: logbroker topics delete orders"""
    broker().delete_topic(name)
    err(f"Deleted topic {name}.")


# -- publish -------------------------------------------------------------------------------------

@app.command()
def publish(
    topic: Annotated[Optional[str], typer.Argument(
        envvar="KAFKA_TOPIC", show_envvar=True, help="Topic to publish to (created if missing).")] = None,
    file: Annotated[Optional[str], typer.Option("--file", "-f", help="Read JSON lines from this file instead of stdin.")] = None,
    key_field: Annotated[Optional[str], typer.Option("--key-field", help="Use this field of each record as its key.")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="Key for every record.")] = None,
    partition: Annotated[Optional[int], typer.Option("--partition", help="Publish every record to this partition.")] = None,
    fsync: Annotated[Optional[str], typer.Option("--fsync", help="always | interval | never (default: the topic's).")] = None,
    partitions: Annotated[int, typer.Option("--partitions", help="Partitions of the topic if it must be created.")] = 3,
) -> None:
    """Publish JSON lines (one record per line) to a topic, like kafka-console-producer.

    Example: logbroker generate 10 | logbroker publish kpop_merchandise_orders
    """
    from logbroker.publish import publish_lines
    if topic is None:
        raise errors.InvalidNameError("no topic given: pass TOPIC or set KAFKA_TOPIC")
    stream = open(file, "rb") if file else sys.stdin.buffer
    try:
        summary = publish_lines(broker().data_dir, topic, stream, key_field=key_field, key=key,
                                partition=partition, fsync=fsync, num_partitions=partitions,
                                on_error=lambda msg: err(msg),
                                on_progress=_progress("published") if progress_enabled() else None)
    finally:
        if file:
            stream.close()
    per = ", ".join(f"{p}: {n}" for p, n in sorted(summary.per_partition.items()))
    total = summary.published + summary.failed
    rate = 100.0 * summary.published / total if total else 100.0
    err(f"Published {summary.published} records to {topic} ({summary.failed} failed, {rate:.1f}% success)"
        + (f"; per partition: {per}" if per else ""))
    if summary.failed:
        raise typer.Exit(1)


def _progress(verb: str):
    last = [0.0]

    def report(count: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            sys.stderr.write(f"\r{verb} {count:,} records...")
            sys.stderr.flush()
    return report


# -- generate ------------------------------------------------------------------------------------

@app.command()
def generate(
    n: Annotated[int, typer.Argument(help="Number of orders; 0 streams until Ctrl+C.")] = 0,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for reproducible output.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Orders per second (default: as fast as possible).")] = None,
) -> None:
    """Write K-pop merchandise orders as JSON lines to stdout.  Example: logbroker generate 10 --seed 42"""
    from logbroker.generator import iter_order_lines
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


# -- inspect, retention, recover -----------------------------------------------------------------

@app.command()
def inspect(
    path: Annotated[str, typer.Argument(help="A .log, .index or .timeindex file, or a partition directory.")],
    verify: Annotated[bool, typer.Option("--verify", help="Check every checksum and index entry; exit 3 on corruption.")] = False,
    print_records: Annotated[bool, typer.Option("--print-records", help="Include every record (like --print-data-log).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Dump segment files like kafka-dump-log.  Example: logbroker inspect segments/orders/orders-0 --verify"""
    from logbroker.inspect import inspect_path
    report = inspect_path(path, records=print_records)
    if json:
        print_json(report)
    else:
        _print_inspect(report)
    if verify and not report.get("ok", False):
        for p in report.get("problems", []):
            err(f"corruption: {p}")
        raise typer.Exit(3)


def _print_inspect(report: dict) -> None:
    kind = report.get("kind")
    if kind == "partition":
        typer.echo(f"Partition directory: {report['path']}")
        if report.get("state"):
            s = report["state"]
            typer.echo(f"  log end offset: {s['log_end_offset']}  high watermark: {s['high_watermark']}  "
                       f"active segment: {s['active_base']}")
        for seg in report["segments"]:
            _print_log(seg)
    elif kind == "log":
        _print_log(report)
    elif kind in ("index", "timeindex"):
        typer.echo(f"Dumping {report['path']}")
        for e in report["entries"]:
            typer.echo("  " + " ".join(f"{k}: {v}" for k, v in e.items()))
    elif kind == "state":
        typer.echo(f"{report['path']}: {report['state']}")
    for p in report.get("problems", []):
        typer.echo(f"PROBLEM: {p}")


def _print_log(seg: dict) -> None:
    typer.echo(f"Dumping {seg['path']}  ({seg['records']} records, {seg['size']} bytes, "
               f"index entries: {seg.get('index_entries', '-')})")
    for b in seg["batches"]:
        typer.echo(f"  baseOffset: {b['base_offset']} lastOffset: {b['last_offset']} count: {b['count']} "
                   f"position: {b['position']} size: {b['bytes']} maxTimestamp: {b['max_timestamp']} "
                   f"crcValid: {str(b['crc_valid']).lower()}")
        for r in b.get("records", []):
            import orjson
            typer.echo(f"  | offset: {r['offset']} timestamp: {r['timestamp']} key: {r['key']} "
                       f"headers: {r['headers'] or {}} value: {orjson.dumps(r['value']).decode()}")


@app.command()
def retention(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be deleted.")] = False,
) -> None:
    """Apply retention.ms / retention.bytes now.  Example: logbroker retention orders --dry-run"""
    reports = broker().apply_retention(topic, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    total = 0
    for r in reports:
        if r.deleted:
            total += len(r.deleted)
            typer.echo(f"{r.topic}-{r.partition}: {verb} {len(r.deleted)} segments ({r.bytes_freed} bytes, "
                       f"{r.reason}); log start offset {r.log_start_offset}")
    if not total:
        typer.echo("Nothing to delete.")


@app.command()
def recover(topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic).")] = None) -> None:
    """Check and repair partitions now: torn tails, indexes, leftovers.  Example: logbroker recover orders"""
    reports = broker().recover(topic)
    changed = [r for r in reports if r]
    for r in changed:
        for a in r.actions:
            typer.echo(f"{r.topic}-{r.partition}: {a}")
    if not changed:
        typer.echo(f"All {len(reports)} partitions are clean.")


# -- entry point -------------------------------------------------------------------------------------

def main() -> None:
    """Run the app, turning library errors into one line on stderr and an exit code."""
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except errors.LogBrokerError as exc:
        err(f"error: {exc}")
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
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        sys.exit(0)
    except Exception as exc:  # click usage errors
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, OSError):
            err(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
