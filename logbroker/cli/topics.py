"""``logbroker topics``: create, list, describe, alter and delete topics, like kafka-topics, in the
data directory or (``--bootstrap-server``) on a Kafka cluster; each subcommand is one call of
:class:`~logbroker.broker.Broker` or :class:`~logbroker.remote.cluster.Cluster`.
"""

from typing import Annotated, List, Optional

import typer

from logbroker import errors
from logbroker.cli.kafka_options import BootstrapServer, CommandConfig, TopicOption, one_name
from logbroker.cli.options import PLAIN, Json, TopicName
from logbroker.cli.output import err, print_json, print_names
from logbroker.cli.target import broker, cluster, nothing_in

__all__ = ["topics_app"]

topics_app = typer.Typer(help="Create, list, describe, alter and delete topics (like kafka-topics).", **PLAIN)


def _topic_name(ctx: typer.Context, name: Optional[str], option: Optional[str]) -> str:
    """The NAME argument or --topic (no $KAFKA_TOPIC: a topic admin command names its topic)."""
    return one_name(ctx, name, option, param="name", env=None)


def _named_topic(ctx: typer.Context, name: Optional[str], option: Optional[str], bootstrap_server: Optional[str],
                 command_config: Optional[str]):
    """(where the topic lives: the cluster or the data directory's Broker, the topic's name)."""
    remote = cluster(bootstrap_server, command_config)
    name = _topic_name(ctx, name, option)
    return remote or broker(), name


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
    name = _topic_name(ctx, name, topic)
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
    json: Json = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """List topics.  Example: logbroker topics list"""
    b = cluster(bootstrap_server, command_config) or broker()
    print_names(b.list_topics(), json, nothing_in(b, "topics"))


@topics_app.command("describe")
def topics_describe(
    ctx: typer.Context,
    name: TopicName = None,
    json: Json = False,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Partitions, offsets, segments, sizes and config of a topic.  Example: logbroker topics describe orders"""
    admin, name = _named_topic(ctx, name, topic, bootstrap_server, command_config)
    info = admin.describe_topic(name)
    if json:
        print_json(info)
    else:
        from logbroker.tools.render import topic_description
        typer.echo(topic_description(info))


@topics_app.command("alter")
def topics_alter(
    ctx: typer.Context,
    name: TopicName = None,
    config: Annotated[Optional[List[str]], typer.Option("--config", "-c", metavar="KEY=VALUE", help="Config to set; repeat for more.")] = None,
    partitions: Annotated[Optional[int], typer.Option("--partitions", help="New (larger) partition count.")] = None,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Change a topic's config or grow its partitions.  Example: logbroker topics alter orders --config retention.ms=3600000"""
    from logbroker.storage.config import parse_config_pairs
    from logbroker.tools.render import config_text, plural
    admin, name = _named_topic(ctx, name, topic, bootstrap_server, command_config)
    t = admin.alter_topic(name, parse_config_pairs(config or []), partitions)
    err(f"Altered topic {t.name}: {plural(t.partitions, 'partition')}; config {config_text(t.config.to_kafka())}")
    if partitions is not None:
        err("Note: keyed records may now map to different partitions (as in Kafka).")


@topics_app.command("delete")
def topics_delete(
    ctx: typer.Context,
    name: TopicName = None,
    topic: TopicOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Delete a topic with all its records and committed offsets.  Example: logbroker topics delete orders"""
    admin, name = _named_topic(ctx, name, topic, bootstrap_server, command_config)
    admin.delete_topic(name)
    err(f"Deleted topic {name}.")
