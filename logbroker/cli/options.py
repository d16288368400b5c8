"""The options and arguments several commands share, each declared once: its flag, type, help and
environment variable. A command names one as its parameter's annotation, e.g.
``json: Json = False``; the default stays in the command's signature.

Where commands give a flag the same meaning but their own help (``--partition``, the topic
argument that falls back on ``$KAFKA_TOPIC``), a function builds the declaration from the help.
Kafka's spellings shared with its console tools (``--topic``, ``--group``, ``--bootstrap-server``,
``--command-config``) are in :mod:`logbroker.cli.kafka_options`.
"""

from typing import Annotated, Optional

import typer

__all__ = ["PLAIN", "Json", "JsonObject", "MaxBlockMs", "Fsync", "TopicName", "GroupName", "EveryTopic",
           "topic_argument", "partition_option"]

#: How every Typer app of the command line prints help: click's plain text (no rich), and a group
#: called without a command shows its help.
PLAIN = dict(rich_markup_mode=None, no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JsonObject = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
MaxBlockMs = Annotated[int, typer.Option(
    "--max-block-ms",
    help="Wait at most this long for a partition lock another process holds (Kafka's max.block.ms).")]
Fsync = Annotated[Optional[str], typer.Option("--fsync", help="always | interval | never (default: the topic's).")]

TopicName = Annotated[Optional[str], typer.Argument(help="Topic name.")]
GroupName = Annotated[Optional[str], typer.Argument(help="Group name.")]
EveryTopic = Annotated[Optional[str], typer.Argument(help="Topic (default: every topic).")]


def topic_argument(help: str):
    """The TOPIC argument of the console tools, which falls back on ``$KAFKA_TOPIC`` (the
    ``env`` of :func:`logbroker.cli.kafka_options.one_name`)."""
    return Annotated[Optional[str], typer.Argument(envvar="KAFKA_TOPIC", show_envvar=True, help=help)]


def partition_option(help: str):
    """``--partition P``: one partition of the topic."""
    return Annotated[Optional[int], typer.Option("--partition", help=help)]
