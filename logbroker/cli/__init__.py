"""The logbroker command line: a thin shell over the ``logbroker`` library.

Each command parses its options, makes one library call and renders the result: records to stdout
as JSON lines, diagnostics to stderr. Errors from the library become one line on stderr and a
non-zero exit code (2 for bad input, 3 for corruption found by ``inspect --verify``, 1 otherwise).
"""

# No `from __future__ import annotations`: typer reads every command's annotations at start-up, and
# string annotations are eval'ed one by one (about 30 ms for this file).
import os
import sys
import time
from typing import Annotated, List, Optional

import typer

# Start-up matters for a tool run in pipelines: only logbroker.errors is imported here. Each command
# imports the library modules it needs, help is formatted by click (rich_markup_mode=None, no rich),
# and cli_typer coerces parameters without pydantic. Text output is built by logbroker.tools.render.
from logbroker.cli.typer_plain import plain_command
from logbroker.cli.kafka_options import (BootstrapServer, CommandConfig, GroupOption, TopicOption, cluster_for,
                                         one_name, producer_options)
from logbroker import errors

ENV_DATA_DIR = "LOGBROKER_DATA_DIR"  # = logbroker.storage.datadir.ENV_DATA_DIR, not imported for start-up's sake
PLAIN = dict(rich_markup_mode=None, no_args_is_help=True)

app = typer.Typer(
    help="logbroker: a durable, append-only log broker backed by plain files (Kafka's model, no server).",
    add_completion=True,
    pretty_exceptions_enable=False,
    **PLAIN,
)
topics_app = typer.Typer(help="Create, list, describe, alter and delete topics (like kafka-topics).", **PLAIN)
app.add_typer(topics_app, name="topics")


class _State:
    data_dir: Optional[str] = None
    cluster: object = None  # the Cluster of --bootstrap-server, when the command runs against one


state = _State()


def broker(create: bool = False, max_block_ms: Optional[int] = None):
    """The Broker of --data-dir. Only commands that write pass ``create``; they say when the data
    directory was created (read-only commands never create it)."""
    from logbroker.broker import Broker
    b = Broker(state.data_dir, create=create) if max_block_ms is None else \
        Broker(state.data_dir, create=create, max_block_ms=max_block_ms)
    if b.created:
        err(f"Created data directory {os.path.abspath(b.data_dir)}")
    return b


ELSEWHERE = f"--data-dir DIR or {ENV_DATA_DIR}=DIR to look elsewhere"
MAX_BLOCK_HELP = "Wait at most this long for a partition lock another process holds (Kafka's max.block.ms)."


def where(b) -> str:
    """The data directory a read-only command looked at, for people: absolute, and whether it exists."""
    return os.path.abspath(b.data_dir) + ("" if b.exists else " (it does not exist)")


def cluster(bootstrap_server: Optional[str], command_config: Optional[str]):
    """The Kafka cluster the command runs against (--bootstrap-server or its variable), or None."""
    state.cluster = cluster_for(bootstrap_server, command_config)
    return state.cluster


def group_admin_of(data_dir: Optional[str]):
    from logbroker.broker import GroupAdmin
    return GroupAdmin(data_dir)


def group_admin(remote):
    """The groups of the cluster, or of the data directory (the same calls, the same results)."""
    return remote if remote is not None else group_admin_of(broker().data_dir)


def print_names(names: list[str], json: bool, kind: str, b) -> None:
    """A list command's output: one name per line, or a JSON array; an empty list says where it looked."""
    if json:
        print_json(names)
    else:
        for n in names:
            typer.echo(n)
    if not names:
        remote = getattr(b, "bootstrap_servers", None)
        err(f"No {kind} on cluster {remote}." if remote else f"No {kind} in data directory {where(b)}; {ELSEWHERE}.")


def err(message: str) -> None:
    typer.echo(message, err=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def print_json(obj: object) -> None:
    import orjson
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()




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
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Topic name: letters, digits, '.', '_' and '-'.")] = None,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="Number of partitions.")] = 3,
    config: Annotated[Optional[List[str]], typer.Option(
        "--config", "-c", metavar="KEY=VALUE", help="Topic config (segment.bytes, retention.ms, fsync, ...); repeat for more.")] = None,
    if_not_exists: Annotated[bool, typer.Option(
        "--if-not-exists", help="Succeed without changing anything when the topic already exists.")] = False,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Create a topic.  Example: logbroker topics create orders --partitions 3 --config retention.ms=86400000"""
    from logbroker.storage.config import parse_config_pairs
    from logbroker.tools.render import plural
    remote = cluster(bootstrap_server, command_config)
    name = one_name(ctx, name, topic, param="name", env=None)
    try:
        t = (remote or broker(create=True)).create_topic(name, partitions, parse_config_pairs(config or []))
    except errors.TopicExistsError:
        if not if_not_exists:
            raise
        t = (remote or broker()).topic(name)
        err(f"Topic {t.name} already exists with {plural(t.partitions, 'partition')}; nothing changed.")
        return
    err(f"Created topic {t.name} with {plural(t.partitions, 'partition')}.")


@topics_app.command("list")
def topics_list(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """List topics.  Example: logbroker topics list"""
    b = cluster(bootstrap_server, command_config) or broker()
    print_names(b.list_topics(), json, "topics", b)


@topics_app.command("describe")
def topics_describe(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Topic name.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Partitions, offsets, segments, sizes and config of a topic.  Example: logbroker topics describe orders"""
    remote = cluster(bootstrap_server, command_config)
    name = one_name(ctx, name, topic, param="name", env=None)
    info = (remote or broker()).describe_topic(name)
    if json:
        print_json(info)
    else:
        from logbroker.tools.render import topic_description
        typer.echo(topic_description(info))


@topics_app.command("alter")
def topics_alter(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Topic name.")] = None,
    config: Annotated[Optional[List[str]], typer.Option("--config", "-c", metavar="KEY=VALUE", help="Config to set; repeat for more.")] = None,
    partitions: Annotated[Optional[int], typer.Option("--partitions", help="New (larger) partition count.")] = None,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Change a topic's config or grow its partitions.  Example: logbroker topics alter orders --config retention.ms=3600000"""
    from logbroker.storage.config import parse_config_pairs
    from logbroker.tools.render import config_text, plural
    remote = cluster(bootstrap_server, command_config)
    name = one_name(ctx, name, topic, param="name", env=None)
    t = (remote or broker()).alter_topic(name, parse_config_pairs(config or []), partitions)
    err(f"Altered topic {t.name}: {plural(t.partitions, 'partition')}; config {config_text(t.config.to_kafka())}")
    if partitions is not None:
        err("Note: keyed records may now map to different partitions (as in Kafka).")


@topics_app.command("delete")
def topics_delete(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Topic name.")] = None,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Delete a topic with all its records and committed offsets.  Example: logbroker topics delete orders"""
    remote = cluster(bootstrap_server, command_config)
    name = one_name(ctx, name, topic, param="name", env=None)
    (remote or broker()).delete_topic(name)
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
    topic_option: Annotated[Optional[str], typer.Option("--topic", help="The topic, Kafka's spelling.")] = None,
    property: Annotated[Optional[List[str]], typer.Option(
        "--property", metavar="NAME=VALUE",
        help="Kafka's producer properties: parse.key=true reads KEY<key.separator>JSON lines "
             "(key.separator: a tab by default).")] = None,
    header: Annotated[Optional[List[str]], typer.Option(
        "--header", metavar="KEY=VALUE", help="A header on every record (repeat for more).")] = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
    max_block_ms: Annotated[int, typer.Option("--max-block-ms", help=MAX_BLOCK_HELP)] = 60000,
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


class Progress:
    """The ``\r``-rewritten progress line on a terminal's stderr (nothing when stderr is not one):
    at most twice a second, ended (erased) before anything else is printed, so the summary that
    follows starts on a clean line and never sits next to a stale count."""

    def __init__(self, verb: str) -> None:
        self.verb, self.shown, self.last = verb, 0, 0.0
        self.enabled = progress_enabled()

    def report(self, count: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            text = f"\r{self.verb} {count:,} record{'' if count == 1 else 's'}..."
            sys.stderr.write(text + " " * max(0, self.shown - len(text)))
            sys.stderr.flush()
            self.shown = len(text)

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * self.shown + "\r")
            sys.stderr.flush()
            self.shown = 0

    def above(self, message: str) -> None:
        """A message printed on its own line, the progress line erased first."""
        self.end()
        err(message)


# -- generate ------------------------------------------------------------------------------------

@app.command()
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


# -- consume, groups, replay --------------------------------------------------------------------

groups_app = typer.Typer(help="List, describe, delete consumer groups and reset their offsets (like kafka-consumer-groups).",
                         **PLAIN)
app.add_typer(groups_app, name="groups")


def _record_writer(fmt: str, properties: Optional[dict] = None):
    from logbroker.tools.render import record_formatter
    line, out = record_formatter(fmt, properties), sys.stdout.buffer
    return lambda record, n: out.write(line(record, n))


@app.command()
def consume(
    ctx: typer.Context,
    topic: Annotated[Optional[str], typer.Argument(envvar="KAFKA_TOPIC", show_envvar=True, help="Topic to read.")] = None,
    topic_option: Annotated[Optional[str], typer.Option("--topic", help="The topic, Kafka's spelling.")] = None,
    group: Annotated[Optional[str], typer.Option("--group", "-g", envvar="KAFKA_CONSUMER_GROUP", show_envvar=True,
                                                 help="Consumer group: share partitions, resume from commits.")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the log start offset when there is no commit.")] = False,
    partition: Annotated[Optional[int], typer.Option("--partition", help="Read only this partition (no group).")] = None,
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
    write = _record_writer(format, parse_properties(property or [], PRINT_PROPERTIES))
    paced = sys.stdout.isatty() or max_messages is None

    try:
        count = run_consume(state.data_dir, topic, write, group=group, from_beginning=from_beginning,
                            partition=partition, offset=offset, from_time=from_time, max_messages=max_messages,
                            timeout_ms=timeout_ms, on_notice=err, on_waiting=err if sys.stderr.isatty() else None,
                            output_closed=_stdout_closed, cluster=remote, flush=sys.stdout.flush if paced else None)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
        if group is not None:
            err(f"The reader of the output went away: group {group} keeps its last commit, so records it "
                f"may not have shown come again (use --max-messages N to take exactly N).")
        return
    from logbroker.tools.render import plural
    err(f"Processed a total of {plural(count, 'message')}")


def _stdout_gone() -> None:
    """Point stdout at /dev/null once its reader has gone, so the flush at exit cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stdout_closed() -> bool:
    """True once nobody reads stdout any more (POLLERR on the write end of a pipe whose reader exited)."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # no events asked: errors and hang-ups are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this platform, or stdout is not a file
        return False


@app.command()
def replay(
    ctx: typer.Context,
    topic: Annotated[Optional[str], typer.Argument(envvar="KAFKA_TOPIC", show_envvar=True, help="Topic to re-read.")] = None,
    topic_option: TopicOption = None,
    from_offset: Annotated[Optional[int], typer.Option("--from-offset", help="First offset (inclusive).")] = None,
    from_time: Annotated[Optional[str], typer.Option("--from-time", help="First record at or after this ISO-8601 time.")] = None,
    to_offset: Annotated[Optional[int], typer.Option("--to-offset", help="Stop before this offset.")] = None,
    to_time: Annotated[Optional[str], typer.Option("--to-time", help="Stop before the first record at or after this time.")] = None,
    partition: Annotated[Optional[int], typer.Option("--partition", help="Only this partition.")] = None,
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
    write = _record_writer(format)
    try:
        for r in records:
            count += 1
            write(r, count)
            progress.report(count)
    finally:
        progress.end()
    sys.stdout.flush()
    err(f"Replayed {plural(count, 'record')}")


@groups_app.command("list")
def groups_list(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """List consumer groups.  Example: logbroker groups list"""
    remote = cluster(bootstrap_server, command_config)
    b = remote or broker()
    print_names(group_admin(remote).list_groups(), json, "consumer groups", b)


@groups_app.command("describe")
def groups_describe(
    ctx: typer.Context,
    group: Annotated[Optional[str], typer.Argument(help="Group name.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Committed offsets, lag and members of a group.  Example: logbroker groups describe billing"""
    remote = cluster(bootstrap_server, command_config)
    group = one_name(ctx, group, group_option, what="group", param="group", env=None)
    admin = group_admin(remote)
    rows, members = admin.describe_group(group), admin.group_members(group)
    if json:
        print_json([{k: getattr(r, k) for k in r.__dataclass_fields__} for r in rows])
    else:
        from logbroker.tools.render import AUTO_COMMIT_NOTE, group_description
        typer.echo(group_description(group, rows, members))
        if members:  # live consumers: their commits trail what they printed
            err(AUTO_COMMIT_NOTE)


@groups_app.command("delete")
def groups_delete(
    ctx: typer.Context,
    group: Annotated[Optional[str], typer.Argument(help="Group name.")] = None,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Delete a group's committed offsets (refused while it has live members).  Example: logbroker groups delete billing"""
    remote = cluster(bootstrap_server, command_config)
    group = one_name(ctx, group, group_option, what="group", param="group", env=None)
    group_admin(remote).delete_group(group)
    err(f"Deleted group {group}.")


@groups_app.command("reset-offsets")
def groups_reset_offsets(
    ctx: typer.Context,
    group: Annotated[Optional[str], typer.Argument(help="Group name.")] = None,
    topic: Annotated[Optional[str], typer.Option("--topic", help="TOPIC or TOPIC:P,P,... to reset (required).")] = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="To the log start offset.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="To the log end offset.")] = False,
    to_current: Annotated[bool, typer.Option("--to-current", help="To the current committed offset.")] = False,
    to_offset: Annotated[Optional[int], typer.Option("--to-offset", help="To this offset.")] = None,
    shift_by: Annotated[Optional[int], typer.Option("--shift-by", help="Move by N (negative: back).")] = None,
    to_datetime: Annotated[Optional[str], typer.Option("--to-datetime", help="To the first record at or after this ISO-8601 time.")] = None,
    by_duration: Annotated[Optional[str], typer.Option("--by-duration", help="To this ISO-8601 duration ago (e.g. PT1H).")] = None,
    execute: Annotated[bool, typer.Option("--execute", help="Apply the plan (otherwise a dry run).")] = False,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Move a group's committed offsets, like kafka-consumer-groups --reset-offsets (dry run unless --execute).

    Example: logbroker groups reset-offsets billing --topic orders --to-earliest --execute
    """
    remote = cluster(bootstrap_server, command_config)
    group = one_name(ctx, group, group_option, what="group", param="group", env=None)
    if topic is None:
        raise errors.InvalidConfigError("--topic is required: TOPIC, or TOPIC:P,P,... for some partitions")
    specs = [s for s, on in (("to-earliest", to_earliest), ("to-latest", to_latest), ("to-current", to_current),
                             (("to-offset", to_offset), to_offset is not None), (("shift-by", shift_by), shift_by is not None),
                             (("to-datetime", to_datetime), to_datetime is not None),
                             (("by-duration", by_duration), by_duration is not None)) if on]
    if len(specs) != 1:
        raise errors.InvalidConfigError("give exactly one of --to-earliest, --to-latest, --to-current, --to-offset, "
                                        "--shift-by, --to-datetime, --by-duration")
    name, _, parts = topic.partition(":")
    try:
        partitions = [int(p) for p in parts.split(",")] if parts else None
    except ValueError:
        raise errors.InvalidConfigError(f"--topic {topic!r}: partitions must be integers, as in orders:0,2") from None
    from logbroker.tools.render import reset_plan
    admin = group_admin(remote)
    plan = admin.plan_reset_offsets(group, name, partitions, specs[0])
    typer.echo(reset_plan(group, plan))
    if execute:
        admin.execute_reset(plan)
        from logbroker.tools.render import plural
        err(f"Reset {plural(len(plan), 'partition')} of group {group}.")
    else:
        err("Dry run: nothing changed. Add --execute to apply this plan.")


@app.command()
def demo(orders: Annotated[int, typer.Option("--orders", help="How many orders to publish.")] = 30) -> None:
    """Show the whole model with real processes: groups split partitions, different groups fan out.

    Example: logbroker demo
    """
    from logbroker.tools.demo import run_demo
    run_demo(state.data_dir, typer.echo, orders=orders)


# -- inspect, retention, recover -----------------------------------------------------------------

@app.command()
def inspect(
    path: Annotated[str, typer.Argument(help="A .log, .index or .timeindex file, or a partition directory.")],
    verify: Annotated[bool, typer.Option("--verify", help="Check every byte as recover would; print a verdict, exit 3 unless OK.")] = False,
    print_records: Annotated[bool, typer.Option("--print-records", help="Include every record (like --print-data-log).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Dump segment files like kafka-dump-log.  Example: logbroker inspect segments/orders/orders-0 --verify"""
    from logbroker.tools.inspect import inspect_path
    report = inspect_path(path, records=print_records)
    if "kind" not in report:  # missing, a symlink, or not a logbroker file: nothing was inspected
        raise errors.LogBrokerError("; ".join(report.get("problems", [])) or f"cannot inspect {path}", path=path)
    if json:
        print_json(report)
    else:
        from logbroker.tools.render import inspect_report
        typer.echo(inspect_report(report))
    if verify and not report.get("ok", False):
        # stderr gets what is wrong; the verdict line ends stdout (the same check recover acts on).
        for p in report.get("damage", report.get("problems", [])):
            err(f"corruption: {p}")
        for p in report.get("repairs", []):
            err(f"needs recovery: {p}")
        raise typer.Exit(3)


@app.command()
def retention(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be deleted.")] = False,
    max_block_ms: Annotated[int, typer.Option("--max-block-ms", help=MAX_BLOCK_HELP)] = 60000,
) -> None:
    """Apply retention.ms / retention.bytes now, then compact compacted topics.  Example: logbroker retention orders --dry-run"""
    from logbroker.tools.render import compact_summary, retention_summary
    b = broker(max_block_ms=max_block_ms)
    reports = b.apply_retention(topic, dry_run=dry_run)
    if not reports:
        err(f"No topics in data directory {where(b)}; {ELSEWHERE}.")
        return
    typer.echo(retention_summary(reports, dry_run))
    if topic is None or b.topic(topic).config.compact:
        cleaned = b.compact(topic, dry_run=dry_run)
        if cleaned:
            typer.echo(compact_summary(cleaned, dry_run))


@app.command()
def compact(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic with cleanup.policy=compact).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what a pass would do.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clean whatever the dirty ratio (min.compaction.lag.ms still applies).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run one log-compaction pass: keep the latest record per key.  Example: logbroker compact profiles --dry-run"""
    from logbroker.tools.render import compact_summary
    reports = broker().compact(topic, dry_run=dry_run, force=force)
    if json:
        print_json([r.to_dict() for r in reports])
    else:
        typer.echo(compact_summary(reports, dry_run))


@app.command("delete-records")
def delete_records(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (or use --offset-json-file).")] = None,
    partition: Annotated[Optional[int], typer.Option("--partition", "-p", help="Partition.")] = None,
    before_offset: Annotated[Optional[int], typer.Option(
        "--before-offset", help="New log start offset; -1 means the high watermark.")] = None,
    offset_json_file: Annotated[Optional[str], typer.Option(
        "--offset-json-file", help='Kafka\'s file: {"partitions":[{"topic":..,"partition":..,"offset":..}],"version":1}.')] = None,
) -> None:
    """Delete records below an offset (advance the log start offset).  Example: logbroker delete-records orders --partition 0 --before-offset 100"""
    from logbroker.tools.render import delete_records_summary
    if offset_json_file is not None:
        if topic is not None or partition is not None or before_offset is not None:
            raise errors.InvalidConfigError("give either --offset-json-file or TOPIC --partition --before-offset")
        from logbroker.groups.admin import parse_offsets_json
        try:
            with open(offset_json_file, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise errors.InvalidConfigError(f"cannot read {offset_json_file}: {exc.strerror}") from None
        offsets = parse_offsets_json(data, offset_json_file)
    elif topic is None or partition is None or before_offset is None:
        raise errors.InvalidConfigError("delete-records needs TOPIC --partition P --before-offset N "
                                        "(or --offset-json-file FILE)")
    else:
        offsets = [(topic, partition, before_offset)]
    typer.echo(delete_records_summary(broker().delete_records(offsets)))


@app.command()
def recover(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic).")] = None,
    max_block_ms: Annotated[int, typer.Option("--max-block-ms", help=MAX_BLOCK_HELP)] = 60000,
) -> None:
    """Check and repair partitions now: torn tails, lost state files, indexes, leftovers; exit 3 when damage was left alone.  Example: logbroker recover orders"""
    from logbroker.tools.render import recover_problems, recover_summary
    b = broker(max_block_ms=max_block_ms)
    reports = b.recover(topic)
    if not reports:
        err(f"No topics in data directory {where(b)}; {ELSEWHERE}.")
        return
    summary = recover_summary(reports)
    if summary:
        typer.echo(summary)
    problems = recover_problems(reports)
    for p in problems:
        err(f"error: {p}")
    if problems:
        raise typer.Exit(3)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (no authentication: keep it local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port, printed).")] = 9092,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Data directory (overrides the global option).")] = None,
    auto_create_topics: Annotated[bool, typer.Option(
        "--auto-create-topics/--no-auto-create-topics", help="Create a topic when a client asks for it (auto.create.topics.enable).")] = True,
    num_partitions: Annotated[int, typer.Option("--num-partitions", help="Partitions of auto-created topics (num.partitions).")] = 3,
    group_initial_rebalance_delay_ms: Annotated[int, typer.Option(
        "--group-initial-rebalance-delay-ms", help="Wait for more members before a new group's first generation.")] = 3000,
    request_log: Annotated[Optional[str], typer.Option(
        "--request-log", help="Append one line per request to this file: client id, API key, version.")] = None,
) -> None:
    """Serve the data directory to any Kafka client (Kafka's wire protocol) until Ctrl+C or SIGTERM.

    Example: logbroker serve --port 9092   then   kcat -b 127.0.0.1:9092 -L
    """
    from logbroker.kafka import ServerConfig, serve as run_serve
    if num_partitions < 1:
        raise errors.InvalidConfigError(f"--num-partitions must be at least 1, got {num_partitions}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        err(f"warning: listening on {host}: logbroker serve has no authentication; anyone who can reach this "
            f"address can read and write every topic")
    config = ServerConfig(host, port, auto_create_topics, num_partitions, group_initial_rebalance_delay_ms)

    def ready(server) -> None:
        typer.echo(f"listening on {server.config.host}:{server.port} (data dir {server.data_dir})")
        sys.stdout.flush()
    run_serve(data_dir or state.data_dir, config, ready, request_log)


# -- mirror ----------------------------------------------------------------------------------------

@app.command()
def mirror(
    topics: Annotated[Optional[List[str]], typer.Argument(help="Topics to copy (default: every topic).")] = None,
    to_bootstrap_server: Annotated[str, typer.Option(
        "--to-bootstrap-server", metavar="HOST:PORT[,HOST:PORT]", help="The Kafka cluster to copy into.")] = ...,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Keep copying new records and group commits until Ctrl+C or SIGTERM.")] = False,
    groups: Annotated[Optional[str], typer.Option(
        "--groups", metavar="G,...", help="Translate only these groups' committed offsets.")] = None,
    all_groups: Annotated[bool, typer.Option(
        "--all-groups", help="Translate every group with committed offsets on the topics (the default).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be created, copied and translated; send nothing.")] = False,
    command_config: Annotated[Optional[str], typer.Option(
        "--command-config", metavar="FILE",
        help="Kafka client properties file (security.protocol, sasl.*, ssl.*).")] = None,
    timeout_ms: Annotated[int, typer.Option(
        "--timeout-ms", help="How long to wait for the cluster's answers.")] = 10000,
) -> None:
    """Copy topics and consumer groups' positions into a Kafka cluster, exactly once; rerun to resume.

    Each partition goes into the same partition (keys, timestamps, headers and value bytes kept);
    a source log that starts at offset N lands at target offset 0, and group offsets are translated
    to match, committed only while the group has no live member on the cluster.

    Example: logbroker mirror --to-bootstrap-server broker1:9092 orders --groups billing
    """
    import signal
    import threading
    from logbroker.remote.connect import resolve_bootstrap
    from logbroker.remote.mirror import Mirror
    from logbroker.tools.render import mirror_plan, mirror_summary, progress_bar
    if groups is not None and all_groups:
        raise errors.InvalidConfigError("--groups and --all-groups contradict each other; give one")
    bootstrap = resolve_bootstrap(to_bootstrap_server)
    if bootstrap is None:
        raise errors.InvalidConfigError("--to-bootstrap-server must name HOST:PORT")
    names = None if groups is None else [g.strip() for g in groups.split(",") if g.strip()]
    bar = {"label": None, "text": ""}

    def on_progress(topic: str, done: int, total: int) -> None:
        if not progress_enabled():
            return
        text = progress_bar(topic, done, total)
        if bar["label"] not in (None, topic):
            sys.stderr.write("\n")
        sys.stderr.write("\r" + text)
        sys.stderr.flush()
        bar["label"], bar["text"] = topic, text

    m = Mirror(state.data_dir, bootstrap, topics, groups=names, command_config=command_config,
               timeout_s=timeout_ms / 1000, on_progress=on_progress)
    if dry_run:
        report = m.dry_run()
        typer.echo(mirror_plan(report))
    else:
        stop = threading.Event()
        interrupted = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, frame: (interrupted.append(number), stop.set()))
        try:
            report = m.run(follow=follow, stop=stop)
        finally:
            if bar["label"] is not None:
                sys.stderr.write("\n")
        if interrupted and not follow:
            err(mirror_summary(report))
            raise typer.Exit(130)
    typer.echo(mirror_summary(report))


# -- bench (perf tools) --
# Kafka's kafka-producer-perf-test / kafka-consumer-perf-test / EndToEndLatency; all logic lives in
# logbroker/bench*.py. The environment header goes first, then the result (or one JSON object).

bench_app = typer.Typer(help="Throughput and latency benchmarks (like kafka-producer-perf-test).", **PLAIN)
app.add_typer(bench_app, name="bench")


def _bench_out(result, json: bool, text: str) -> None:
    if json:
        print_json(result.to_dict())
    else:
        from logbroker.tools.bench import format_environment
        typer.echo(format_environment(result.environment))
        typer.echo(text)


def _one_process(**options) -> None:
    """Against a cluster the benchmarks run one client in this process and leave durability to it."""
    for name, value in options.items():
        if value not in (None, 1):
            raise errors.InvalidConfigError(f"--{name} applies to the data directory; with --bootstrap-server "
                                            f"leave it out")


@bench_app.command("produce")
def bench_produce(
    topic: Annotated[str, typer.Option("--topic", help="Topic (created with --partitions if missing).")],
    num_records: Annotated[int, typer.Option("--num-records", help="Records to send.")],
    record_size: Annotated[Optional[int], typer.Option("--record-size", help="Bytes of JSON per value (orders, padded).")] = None,
    payload_file: Annotated[Optional[str], typer.Option("--payload-file", help="Values, one per line (JSON or text).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per batch (one write each).")] = 100,
    fsync: Annotated[Optional[str], typer.Option("--fsync", help="always | interval | never (default: the topic's).")] = None,
    producers: Annotated[int, typer.Option("--producers", help="Producer processes (spawned).")] = 1,
    partitions: Annotated[int, typer.Option("--partitions", help="Partitions if the topic must be created.")] = 1,
    throughput: Annotated[float, typer.Option("--throughput", help="Records/s for all producers; -1 = unthrottled.")] = -1,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure produce throughput and send-to-ack latency.  Example: logbroker bench produce --topic perf --num-records 100000 --record-size 250"""
    from logbroker.tools.bench import produce_perf
    if (record_size is None) == (payload_file is None):
        raise errors.InvalidConfigError("give exactly one of --record-size and --payload-file")
    remote = cluster(bootstrap_server, command_config)
    if remote is not None:
        _one_process(producers=producers, fsync=fsync)
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
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure consume throughput in kafka-consumer-perf-test's columns.  Example: logbroker bench consume --topic perf"""
    from logbroker.tools.bench import consume_perf
    remote = cluster(bootstrap_server, command_config)
    if remote is not None:
        _one_process(consumers=consumers)
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
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Measure producer-to-consumer latency across two processes.  Example: logbroker bench e2e --rate 1000 --num-records 10000"""
    from logbroker.tools.bench import e2e_perf
    remote = cluster(bootstrap_server, command_config)
    if remote is not None:
        _one_process(fsync=fsync)
        from logbroker.tools.bench_cluster import e2e_perf as e2e_remote
        result = e2e_remote(remote, rate, num_records)
        return _bench_out(result, json, result.summary_line())
    result = e2e_perf(broker(create=True).data_dir, rate, num_records, fsync=fsync, progress=progress_enabled())
    _bench_out(result, json, result.summary_line())


# -- entry point -------------------------------------------------------------------------------------

def _terminated(signum: int, frame: object) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt  # SIGTERM ends a command as Ctrl+C does: commits, summaries, clean close


_TERMINATED: list[int] = []


def main() -> None:
    """Run the app, turning library errors into one line on stderr and an exit code. SIGTERM is
    handled as Ctrl+C (``serve`` and ``mirror`` set their own handlers), exiting 143."""
    import signal
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _main()
    except SystemExit as exc:
        if _TERMINATED and exc.code in (None, 0, 130):
            sys.exit(128 + _TERMINATED[0])
        raise
    if _TERMINATED:  # a command that ends quietly on Ctrl+C (consume) still says it was terminated
        sys.exit(128 + _TERMINATED[0])


def _main() -> None:
    try:
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = plain_command(app)(prog_name="logbroker", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except errors.LogBrokerError as exc:
        hint = ""
        if isinstance(exc, (errors.UnknownTopicError, errors.UnknownGroupError, errors.DataDirError)) \
                and "does not exist" in str(exc) and state.cluster is None:
            from logbroker.storage.datadir import data_dir_path
            path = os.path.abspath(data_dir_path(state.data_dir))
            hint = f" ({ELSEWHERE})" if path in str(exc) else f" (data directory {path}; {ELSEWHERE})"
        err(f"error: {exc}{hint}")
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
        _stdout_gone()
        sys.exit(0)
    except Exception as exc:  # click usage errors
        # Recent typer vendors click (typer._click), so match the class by name, not by import.
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called with no command: its help
            err(exc.format_message())
            sys.exit(exc.exit_code)
        if any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message()
            if message:  # empty when the help was printed instead (a group called with no command)
                err(f"error: {message}{hint}")
            sys.exit(exc.exit_code)
        if isinstance(exc, OSError):
            where = exc.filename or _stdout_if_raised_here(exc)
            err(f"error: {exc.strerror or exc}" + (f": {where}" if where else ""))
            sys.exit(1)
        raise


def _stdout_if_raised_here(exc: BaseException) -> Optional[str]:
    """An OSError with no file name raised by a write in this file is a write to standard output
    (records, tables): name where it goes, e.g. a file on a full disk."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or tb.tb_frame.f_code.co_filename != __file__:
        return None
    try:
        return f"standard output ({os.readlink('/proc/self/fd/1')})"
    except OSError:
        return "standard output"


if __name__ == "__main__":
    main()
