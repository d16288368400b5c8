"""Connection settings for a Kafka cluster: ``--bootstrap-server``, ``--command-config`` and the client.

:func:`client_config` turns the command line into a librdkafka configuration dict;
:func:`kafka_client` imports confluent-kafka or says how to install it. The client library is
imported only here and only when a command is pointed at a cluster.
"""

from __future__ import annotations

import os
from typing import Any

from logbroker import errors

__all__ = ["ENV_BOOTSTRAP_SERVERS", "INSTALL_HINT", "client_config", "kafka_client", "read_properties",
           "resolve_bootstrap"]

ENV_BOOTSTRAP_SERVERS = "LOGBROKER_BOOTSTRAP_SERVERS"
INSTALL_HINT = "pip install 'logbroker[kafka]'"


def kafka_client() -> Any:
    """The ``confluent_kafka`` module, or :class:`~logbroker.errors.ClusterError` naming the extra."""
    try:
        import confluent_kafka
    except ImportError:
        raise errors.ClusterError(f"--bootstrap-server needs the Kafka client library (confluent-kafka): "
                                  f"{INSTALL_HINT}") from None
    return confluent_kafka


def resolve_bootstrap(bootstrap_servers: str | None) -> str | None:
    """``--bootstrap-server``, else ``$LOGBROKER_BOOTSTRAP_SERVERS``, else None (use the data directory).

    Checks the ``HOST:PORT[,HOST:PORT]`` form, so a typo is one line naming it and not a client's
    retry loop."""
    value = bootstrap_servers if bootstrap_servers is not None else os.environ.get(ENV_BOOTSTRAP_SERVERS)
    if value is None or value.strip() == "":
        return None
    for address in value.split(","):
        host, sep, port = address.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise errors.InvalidConfigError(f"--bootstrap-server {value!r}: {address.strip()!r} is not HOST:PORT")
    return ",".join(a.strip() for a in value.split(","))


def read_properties(path: str) -> dict[str, str]:
    """A Java-style client properties file (Kafka's ``--command-config``): ``key=value`` or
    ``key: value`` per line, ``#``/``!`` comments, blank lines ignored; a bad line is an error naming
    the file and line number."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise errors.ClusterError(f"--command-config {path}: {e.strerror or e}") from None
    props: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise errors.InvalidConfigError(f"{path}:{number}: {line!r} is not key=value")
        props[line[:cut].strip()] = line[cut + 1:].strip()
    return props


def client_config(bootstrap_servers: str, command_config: str | None = None,
                  **settings: Any) -> dict[str, Any]:
    """The librdkafka configuration for a command: the bootstrap servers, then ``settings`` (the
    command's own, in librdkafka's dotted names passed as ``**{"linger.ms": 5}``), then the
    ``--command-config`` file, whose security settings (security.protocol, sasl.*, ssl.*) win."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers}
    config.update(settings)
    if command_config is not None:
        config.update(read_properties(command_config))
    return config
