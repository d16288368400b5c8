"""``logbroker consume`` and ``logbroker replay``: records of a topic to stdout, one line each.

``consume`` is kafka-console-consumer (one call of :func:`logbroker.tools.console.consume`: follow
the topic, alone or in a group that commits what was printed); ``replay`` re-reads a range of
offsets or times without touching any group, to stdout or into another topic (one call of
``replay``, and of ``republish`` with ``--to-topic``).
"""

import sys
from typing import Annotated, List, Optional

import typer

from logbroker import errors
from logbroker.cli.kafka_options import BootstrapServer, CommandConfig, TopicOption, one_name
from logbroker.cli.options import partition_option, topic_argument
from logbroker.cli.output import Progress, err, record_writer, stdout_closed, stdout_gone
from logbroker.cli.target import broker, cluster, group_admin_of, state

__all__ = ["consume", "replay"]


def consume(
    ctx: typer.Context,
    topic: topic_argument("Topic to read.") = None,
    topic_option: TopicOption = None,
    group: Annotated[Optional[str], typer.Option("--group", "-g", envvar="KAFKA_CONSUMER_GROUP", show_envvar=True,
                                                 help="Consumer group: share partitions, resume from commits.")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the log start offset when there is no commit.")] = False,
    partition: partition_option("Read only this partition (no group).") = None,
    offset: Annotated[Optional[str], typer.Option(
        "--offset", metavar="OFFSET|earliest|latest",
        help="Start at this offset (needs --partition), or earliest (= --from-beginning) or latest.")] = None,
    from_time: Annotated[Optional[str], typer.Option("--from-time", help="Start at the first record at or after this ISO-8601 time.")] = None,
    max_messages: Annotated[Optional[int], typer.Option("--max-messages", help="Exit after this many records (and commit exactly those).")] = None,
    timeout_ms: Annotated[Optional[int], typer.Option("--timeout-ms", help="Exit after this long with no new record.")] = None,
    format: Annotated[str, typer.Option("--format", help="json (values, one per line) | envelope | pretty.")] = "json",
    property: Annotated[Optional[List[str]], typer.Option(
        "--property", metavar="NAME=VALUE",
        help="Kafka's formatter properties: print.key, print.timestamp, print.partition, print.offset, "
             "print.headers, print.value (true|false), key.separator.")] = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Read records like kafka-console-consumer; follows the topic until Ctrl+C.

    With a group, what is committed is what was written: --max-messages N, --timeout-ms or Ctrl+C
    commit exactly the records printed. When the reader of a pipe exits early (`| head -3`) it may
    have taken more from the pipe than it showed, so nothing is committed past the last automatic
    commit (every 5 s): those records come again rather than being skipped. To take exactly N
    records, use --max-messages N. A topic that does not exist yet is waited for, then read from its
    start.

    Example: logbroker consume orders --group billing --from-beginning --format pretty
    """
    from logbroker.tools.console import consume as run_consume
    from logbroker.tools.render import PRINT_PROPERTIES, parse_properties
    remote = cluster(bootstrap_server, command_config)
    topic = one_name(ctx, topic, topic_option)
    write = record_writer(format, parse_properties(property or [], PRINT_PROPERTIES))
    paced = sys.stdout.isatty() or max_messages is None

    try:
        count = run_consume(state.data_dir, topic, write, group=group, from_beginning=from_beginning,
                            partition=partition, offset=offset, from_time=from_time, max_messages=max_messages,
                            timeout_ms=timeout_ms, on_notice=err, on_waiting=err if sys.stderr.isatty() else None,
                            output_closed=stdout_closed, cluster=remote, flush=sys.stdout.flush if paced else None)
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_gone()
        if group is not None:
            err(f"The reader of the output went away: group {group} keeps its last commit, so records it "
                f"may not have shown come again (use --max-messages N to take exactly N).")
        return
    from logbroker.tools.render import plural
    err(f"Processed a total of {plural(count, 'message')}")


def replay(
    ctx: typer.Context,
    topic: topic_argument("Topic to re-read.") = None,
    topic_option: TopicOption = None,
    from_offset: Annotated[Optional[int], typer.Option("--from-offset", help="First offset (inclusive).")] = None,
    from_time: Annotated[Optional[str], typer.Option("--from-time", help="First record at or after this ISO-8601 time.")] = None,
    to_offset: Annotated[Optional[int], typer.Option("--to-offset", help="Stop before this offset.")] = None,
    to_time: Annotated[Optional[str], typer.Option("--to-time", help="Stop before the first record at or after this time.")] = None,
    partition: partition_option("Only this partition.") = None,
    to_topic: Annotated[Optional[str], typer.Option("--to-topic", help="Re-publish into this topic instead of printing.")] = None,
    format: Annotated[str, typer.Option("--format", help="json | envelope | pretty.")] = "envelope",
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Re-read a historical range without touching any group's offsets.

    Example: logbroker replay orders --from-offset 0 --to-offset 100 --partition 0
    """
    remote = cluster(bootstrap_server, command_config)
    topic = one_name(ctx, topic, topic_option)
    if from_offset is None and from_time is None:
        raise errors.InvalidConfigError("give --from-offset N or --from-time ISO8601")
    source = remote or group_admin_of(state.data_dir)
    records = source.replay(topic, from_offset, to_offset, partition, from_time=from_time, to_time=to_time)
    from logbroker.tools.render import plural
    count = 0
    progress = Progress("replayed")
    if to_topic is not None:
        try:
            target = remote or group_admin_of(broker(create=True).data_dir)
            count = target.republish(records, to_topic, on_progress=progress.report)
        finally:
            progress.end()
        err(f"Replayed {plural(count, 'record')} from {topic} into {to_topic}")
        return
    write = record_writer(format)
    try:
        for r in records:
            count += 1
            write(r, count)
            progress.report(count)
    finally:
        progress.end()
    sys.stdout.flush()
    err(f"Replayed {plural(count, 'record')}")
