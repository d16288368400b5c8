"""``logbroker bench``: Kafka's kafka-producer-perf-test, kafka-consumer-perf-test and
EndToEndLatency, on the data directory or (``--bootstrap-server``) on a Kafka cluster.

All logic lives in :mod:`logbroker.tools.bench` (and :mod:`logbroker.tools.bench_cluster`); each
subcommand is one call of it. The environment header goes first, then the result, or all of it as
one JSON object with ``--json``.
"""

from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.kafka_options import BootstrapServer, CommandConfig
from logbroker.cli.options import PLAIN, Fsync, JsonObject
from logbroker.cli.output import err, print_json, progress_enabled
from logbroker.cli.target import broker, cluster

__all__ = ["bench_app"]

bench_app = typer.Typer(help="Throughput and latency benchmarks (like kafka-producer-perf-test).", **PLAIN)


def _bench_out(result, json: bool, text: str) -> None:
    """The environment header and ``text``, or the whole result as one JSON object."""
    if json:
        print_json(result.to_dict())
    else:
        from logbroker.tools.bench import format_environment
        typer.echo(format_environment(result.environment))
        typer.echo(text)


def _cluster(bootstrap_server: Optional[str], command_config: Optional[str], **local_only):
    """The cluster to measure, or None for the data directory. Against a cluster the benchmarks run
    one client in this process and leave durability to it: the options ``local_only`` names (a
    process count, --fsync) must be left out."""
    remote = cluster(bootstrap_server, command_config)
    if remote is not None:
        for name, value in local_only.items():
            if value not in (None, 1):
                raise errors.InvalidConfigError(f"--{name} applies to the data directory; with --bootstrap-server "
                                                f"leave it out")
    return remote


@bench_app.command("produce")
def bench_produce(
    topic: Annotated[str, typer.Option("--topic", help="Topic (created with --partitions if missing).")],
    num_records: Annotated[int, typer.Option("--num-records", help="Records to send.")],
    record_size: Annotated[Optional[int], typer.Option("--record-size", help="Bytes of JSON per value (orders, padded).")] = None,
    payload_file: Annotated[Optional[str], typer.Option("--payload-file", help="Values, one per line (JSON or text).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per batch (one write each).")] = 100,
    fsync: Fsync = None,
    producers: Annotated[int, typer.Option("--producers", help="Producer processes (spawned).")] = 1,
    partitions: Annotated[int, typer.Option("--partitions", help="Partitions if the topic must be created.")] = 1,
    throughput: Annotated[float, typer.Option("--throughput", help="Records/s for all producers; -1 = unthrottled.")] = -1,
    json: JsonObject = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure produce throughput and send-to-ack latency.  Example: logbroker bench produce --topic perf --num-records 100000 --record-size 250"""
    from logbroker.tools.bench import produce_perf
    if (record_size is None) == (payload_file is None):
        raise errors.InvalidConfigError("give exactly one of --record-size and --payload-file")
    remote = _cluster(bootstrap_server, command_config, producers=producers, fsync=fsync)
    if remote is not None:
        from logbroker.tools.bench_cluster import produce_perf as produce_remote
        result = produce_remote(remote, topic, num_records, record_size=record_size, payload_file=payload_file,
                                partitions=partitions, throughput=throughput)
        return _bench_out(result, json, result.summary_line())
    result = produce_perf(broker(create=True).data_dir, topic, num_records, record_size=record_size, payload_file=payload_file,
                          batch_size=batch_size, fsync=fsync, producers=producers, partitions=partitions,
                          throughput=throughput, progress=progress_enabled())
    _bench_out(result, json, result.summary_line())


@bench_app.command("consume")
def bench_consume(
    topic: Annotated[str, typer.Option("--topic", help="Topic to read from its log start offset.")],
    group: Annotated[Optional[str], typer.Option("--group", help="Read as this consumer group.")] = None,
    num_records: Annotated[Optional[int], typer.Option("--num-records", help="Records to read (default: all).")] = None,
    consumers: Annotated[int, typer.Option("--consumers", help="Consumer processes (spawned).")] = 1,
    json: JsonObject = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure consume throughput in kafka-consumer-perf-test's columns.  Example: logbroker bench consume --topic perf"""
    from logbroker.tools.bench import consume_perf
    remote = _cluster(bootstrap_server, command_config, consumers=consumers)
    if remote is not None:
        from logbroker.tools.bench_cluster import consume_perf as consume_remote
        result = consume_remote(remote, topic, num_records, group=group)
    else:
        result = consume_perf(broker().data_dir, topic, num_records, group=group, consumers=consumers,
                              progress=progress_enabled())
    if result.warning():
        err(result.warning())
    _bench_out(result, json, result.table())


@bench_app.command("e2e")
def bench_e2e(
    rate: Annotated[float, typer.Option("--rate", help="Records per second to produce.")] = 1000.0,
    num_records: Annotated[int, typer.Option("--num-records", help="Records to send.")] = 10000,
    fsync: Annotated[Optional[str], typer.Option("--fsync", help="always | interval | never (default: always).")] = None,
    json: JsonObject = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure producer-to-consumer latency across two processes.  Example: logbroker bench e2e --rate 1000 --num-records 10000"""
    from logbroker.tools.bench import e2e_perf
    remote = _cluster(bootstrap_server, command_config, fsync=fsync)
    if remote is not None:
        from logbroker.tools.bench_cluster import e2e_perf as e2e_remote
        result = e2e_remote(remote, rate, num_records)
        return _bench_out(result, json, result.summary_line())
    result = e2e_perf(broker(create=True).data_dir, rate, num_records, fsync=fsync, progress=progress_enabled())
    _bench_out(result, json, result.summary_line())
