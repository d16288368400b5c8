"""``logbroker publish``: JSON lines from stdin or a file into a topic, like kafka-console-producer;
one call of :func:`logbroker.tools.publish.publish_lines` (or its cluster twin), with the progress
line and the summary of what was acknowledged.
"""

import sys
from typing import Annotated, List, Optional

import typer

from logbroker import errors
from logbroker.cli.kafka_options import BootstrapServer, CommandConfig, TopicOption, one_name, producer_options
from logbroker.cli.options import Fsync, MaxBlockMs, partition_option, topic_argument
from logbroker.cli.output import Progress, err
from logbroker.cli.target import broker, cluster

__all__ = ["publish"]


def publish(
    topic: topic_argument("Topic to publish to (created if missing).") = None,
    file: Annotated[Optional[str], typer.Option("--file", "-f", help="Read JSON lines from this file instead of stdin.")] = None,
    key_field: Annotated[Optional[str], typer.Option("--key-field", help="Use this field of each record as its key.")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="Key for every record.")] = None,
    partition: partition_option("Publish every record to this partition.") = None,
    fsync: Fsync = None,
    partitions: Annotated[int, typer.Option("--partitions", help="Partitions of the topic if it must be created.")] = 3,
    topic_option: TopicOption = None,
    property: Annotated[Optional[List[str]], typer.Option(
        "--property", metavar="NAME=VALUE",
        help="Kafka's producer properties: parse.key=true reads KEY<key.separator>JSON lines "
             "(key.separator: a tab by default).")] = None,
    header: Annotated[Optional[List[str]], typer.Option(
        "--header", metavar="KEY=VALUE", help="A header on every record (repeat for more).")] = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
    max_block_ms: MaxBlockMs = 60000,
    ctx: typer.Context = None,
) -> None:
    """Publish JSON lines (one record per line) to a topic, like kafka-console-producer.

    Each line is published as soon as it is read, while the input stays open (a terminal, a pipe,
    tail -f): it is written within linger.ms (5 ms; at once when no write is in progress). With
    fsync=always (the default) consumers see a line only once it is written and fsynced, so a
    visible line is a durable one; with interval it becomes visible and durable at the next sync
    (flush.ms), with never it is visible when written and durable when the OS writes it back.
    Empty lines are skipped. The summary on stderr (also after Ctrl+C or an error) counts only
    acknowledged records, per partition with the last offset; after Ctrl+C it names the last line
    read: every line up to it was published or reported, so a rerun resumes after it.

    Example: logbroker generate 10 | logbroker publish kpop_merchandise_orders
    """
    from logbroker.tools.publish import PublishSummary, publish_lines
    from logbroker.tools.render import publish_summary
    remote = cluster(bootstrap_server, command_config)
    topic = one_name(ctx, topic, topic_option)
    key_separator, headers = producer_options(property or [], header or [], key, key_field)
    if remote is not None and fsync is not None:
        raise errors.InvalidConfigError("--fsync is a data directory's policy; a cluster's durability is its own")
    stream = open(file, "rb") if file else sys.stdin.buffer
    summary = PublishSummary()
    progress = Progress("published")
    finished = False
    common = dict(key_field=key_field, key=key, partition=partition, num_partitions=partitions,
                  on_error=progress.above, on_progress=progress.report, key_separator=key_separator,
                  headers=headers, summary=summary)
    try:
        if remote is not None:
            from logbroker.tools.publish_cluster import publish_lines as publish_remote
            publish_remote(remote, topic, stream, **common)
        else:
            publish_lines(broker(create=True).data_dir, topic, stream, fsync=fsync, max_block_ms=max_block_ms,
                          **common)
        finished = True
    finally:
        if file:
            stream.close()
        progress.end()
        # On every exit path where something may have been published, before the error line: what
        # was acknowledged. (A failure before the first acknowledgement is the error line alone.)
        if finished or summary.published or summary.interrupted:
            err(publish_summary(summary, topic))
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.failed or summary.not_acknowledged:
        raise typer.Exit(1)
