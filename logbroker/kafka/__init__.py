"""Kafka's wire protocol over logbroker's files: ``logbroker serve``.

Modules, bottom-up: :mod:`.wire` (primitives and the schema interpreter), :mod:`.schemas` (the
APIs and versions spoken), :mod:`.crc32c` and :mod:`.batch` (record batches v2), :mod:`.errors`
(Kafka's error codes), :mod:`.storage` (the data directory as the server sees it),
:mod:`.idempotence` (producer ids and sequences), :mod:`.handlers` (data and admin APIs),
:mod:`.coordinator` and :mod:`.group_api` (consumer groups and committed offsets), :mod:`.server`
(connections, framing, dispatch). It depends on the storage and groups layers, never on the CLI.
"""

from .handlers import ServerConfig
from .server import KafkaServer, serve

__all__ = ["KafkaServer", "ServerConfig", "serve"]
