"""logbroker: a durable, append-only log broker backed by plain files (Kafka's model, no server).

Entry points: :class:`Broker` (a data directory: topics, retention, recovery), :class:`Producer`
(``send`` / ``flush`` / ``close``) and :class:`Consumer` (``subscribe`` / ``poll`` / ``commit`` /
``seek``). The layers, bottom-up: fsutil → record → index → checkpoint → segment → log / reader →
topic → producer / consumer / group → broker. FORMAT.md defines the bytes on disk.

The public names below are imported on first use (PEP 562), so ``import logbroker.errors`` or
``import logbroker.tools.generator`` does not load the storage stack: the CLI's start-up depends on it.
``from logbroker import Broker`` works as before.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import *  # noqa: F401,F403  (the hierarchy is part of the public API; errors imports nothing)
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports them
    from .broker import Broker
    from .storage.datadir import resolve_data_dir
    from .storage.config import TopicConfig
    from .clients.consumer import Consumer, TopicPartition
    from .clients.producer import FutureBatchMetadata, FutureRecordMetadata, Producer, RecordMetadata
    from .storage.consumer_record import Record, Records

# public name -> the module that defines it
_LAZY = {
    "Broker": ".broker",
    "resolve_data_dir": ".storage.datadir",
    "TopicConfig": ".storage.config",
    "Producer": ".clients.producer",
    "RecordMetadata": ".clients.producer",
    "FutureRecordMetadata": ".clients.producer",
    "Record": ".storage.consumer_record",
    "Records": ".storage.consumer_record",
    "Consumer": ".clients.consumer",
    "TopicPartition": ".clients.consumer",
    "FutureBatchMetadata": ".clients.producer",
}

__all__ = ["Broker", "Producer", "Consumer", "TopicPartition", "RecordMetadata", "FutureRecordMetadata",
           "FutureBatchMetadata", "Record", "Records", "TopicConfig", "resolve_data_dir", "__version__", *_errors_all]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'logbroker' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
