"""Kafka's spellings on the command line: the options and checks logbroker's commands share with
kafka-topics, kafka-console-producer, kafka-console-consumer and kafka-consumer-groups.

``--topic`` / ``--group`` beside the positional names (:func:`one_name`), ``--bootstrap-server``
and ``--command-config`` (:func:`cluster_for`: a Kafka cluster to run the command against instead
of the data directory), and the console producer's ``--property`` and ``--header``
(:func:`producer_options`). The consumer's ``--property print.*`` formatting is
:func:`logbroker.tools.render.kafka_line`. Only :mod:`logbroker.cli` imports this module.
"""

from typing import Annotated, Optional

import typer

from logbroker import errors

__all__ = ["BootstrapServer", "CommandConfig", "TopicOption", "GroupOption", "cluster_for", "one_name",
           "producer_options"]

BootstrapServer = Annotated[Optional[str], typer.Option(
    "--bootstrap-server", metavar="HOST:PORT[,HOST:PORT]",
    help="Run against this Kafka cluster instead of the data directory (also $LOGBROKER_BOOTSTRAP_SERVERS; "
         "needs pip install 'logbroker[kafka]').")]
CommandConfig = Annotated[Optional[str], typer.Option(
    "--command-config", metavar="FILE",
    help="Kafka client properties for the cluster (security.protocol, sasl.*, ssl.*, client.id, ...).")]


TopicOption = Annotated[Optional[str], typer.Option("--topic", help="The topic, Kafka's spelling.")]
GroupOption = Annotated[Optional[str], typer.Option("--group", help="The group, Kafka's spelling.")]


def cluster_for(bootstrap_server: Optional[str], command_config: Optional[str]):
    """The :class:`~logbroker.remote.cluster.Cluster` of ``--bootstrap-server`` (or
    $LOGBROKER_BOOTSTRAP_SERVERS), or None: the command uses the data directory. The Kafka client
    library is imported only here, and only when there is a cluster."""
    from logbroker.remote.connect import resolve_bootstrap
    servers = resolve_bootstrap(bootstrap_server)
    if servers is None:
        if command_config is not None:
            raise errors.InvalidConfigError("--command-config needs --bootstrap-server (or "
                                            "$LOGBROKER_BOOTSTRAP_SERVERS): it configures the Kafka client")
        return None
    from logbroker.remote.cluster import Cluster
    return Cluster(servers, command_config)


def one_name(ctx: typer.Context, positional: Optional[str], option: Optional[str], what: str = "topic",
             param: str = "topic", env: Optional[str] = "KAFKA_TOPIC") -> str:
    """The positional name (TOPIC, GROUP) or Kafka's --topic / --group option: one of them, or both the same.

    ``param`` is the positional's parameter name; a value it took from ``env`` yields to the option."""
    if option is not None:
        source = getattr(ctx.get_parameter_source(param), "name", None)  # typer may vendor click: no import
        if positional is not None and positional != option and source != "ENVIRONMENT":
            raise errors.InvalidConfigError(f"two {what}s given: {positional} and --{what} {option}; give one")
        return option
    if positional is None:
        hint = f" or set {env}" if env else ""
        raise errors.InvalidNameError(f"no {what} given: pass {what.upper()}{hint}, or --{what} {what.upper()}")
    return positional


def producer_options(properties: list[str], headers: list[str], key: Optional[str],
                     key_field: Optional[str]) -> tuple[Optional[str], Optional[dict]]:
    """kafka-console-producer's --property parse.key / key.separator and --header k=v, checked."""
    from logbroker.tools.render import parse_properties
    props = parse_properties(properties, ("parse.key", "key.separator"))
    parse_key = props.get("parse.key", "false").lower()
    if parse_key not in ("true", "false"):
        raise errors.InvalidConfigError(f"--property parse.key={props['parse.key']}: use true or false")
    separator = props.get("key.separator", "\t") if parse_key == "true" else None
    if separator == "":
        raise errors.InvalidConfigError("--property key.separator must not be empty")
    if separator is not None and (key is not None or key_field is not None):
        raise errors.InvalidConfigError("--property parse.key=true takes the key from each line; "
                                        "leave out --key and --key-field")
    parsed = {}
    for pair in headers:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise errors.InvalidConfigError(f"--header {pair!r} is not of the form key=value")
        parsed[name] = value
    return separator, parsed or None
