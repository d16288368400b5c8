"""What a command runs against: the data directory of ``--data-dir`` (a
:class:`~logbroker.broker.Broker` and its :class:`~logbroker.broker.GroupAdmin`) or the Kafka cluster
of ``--bootstrap-server``.

:data:`state` holds the two for the one command a process runs: the root callback sets
``data_dir``, :func:`cluster` sets ``cluster`` (which :func:`logbroker.cli.root.main` reads to word
its "does not exist" hints). The library is imported only when a command asks for it, so ``--help``
loads none of it.
"""

import os
from typing import Optional

from logbroker.cli.kafka_options import cluster_for
from logbroker.cli.output import err

__all__ = ["ENV_DATA_DIR", "ELSEWHERE", "state", "broker", "where", "nothing_in", "cluster", "group_admin_of", "group_admin"]

ENV_DATA_DIR = "LOGBROKER_DATA_DIR"  # = logbroker.storage.datadir.ENV_DATA_DIR, not imported for start-up's sake
ELSEWHERE = f"--data-dir DIR or {ENV_DATA_DIR}=DIR to look elsewhere"


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


def where(b) -> str:
    """The data directory a read-only command looked at, for people: absolute, and whether it exists."""
    return os.path.abspath(b.data_dir) + ("" if b.exists else " (it does not exist)")


def nothing_in(b, kind: str) -> str:
    """The line saying a list of ``kind`` came back empty, and where it was looked for: the cluster
    of ``b``, or its data directory with how to look elsewhere."""
    remote = getattr(b, "bootstrap_servers", None)
    return f"No {kind} on cluster {remote}." if remote else f"No {kind} in data directory {where(b)}; {ELSEWHERE}."


def cluster(bootstrap_server: Optional[str], command_config: Optional[str]):
    """The Kafka cluster the command runs against (--bootstrap-server or its variable), or None."""
    state.cluster = cluster_for(bootstrap_server, command_config)
    return state.cluster


def group_admin_of(data_dir: Optional[str]):
    """The GroupAdmin of a data directory (None: the default one)."""
    from logbroker.broker import GroupAdmin
    return GroupAdmin(data_dir)


def group_admin(remote):
    """The groups of the cluster, or of the data directory (the same calls, the same results)."""
    return remote if remote is not None else group_admin_of(broker().data_dir)
