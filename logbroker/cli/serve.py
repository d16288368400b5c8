"""``logbroker serve``: the data directory served to any Kafka client over Kafka's wire protocol,
until Ctrl+C or SIGTERM; one call of :func:`logbroker.kafka.serve`, which reports on stdout the
address it listens on once it does.
"""

import sys
from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.output import err
from logbroker.cli.target import state

__all__ = ["serve"]


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
