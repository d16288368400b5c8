"""logbroker: a durable, append-only log broker backed by plain files (Kafka's model, no server).

Entry points: :class:`Broker` (a data directory: topics, retention, recovery), :class:`Producer`
(``send`` / ``flush`` / ``close``) and :class:`Consumer` (``subscribe`` / ``poll`` / ``commit`` /
``seek``). The layers, bottom-up: fsutil → record → index → checkpoint → segment → log / reader →
topic → producer / consumer / group → broker. FORMAT.md defines the bytes on disk.
"""

from .broker import Broker, resolve_data_dir
from .config import TopicConfig
from .errors import *  # noqa: F401,F403  (the hierarchy is part of the public API)
from .errors import __all__ as _errors_all
from .producer import FutureRecordMetadata, Producer, RecordMetadata
from .record import Record

__version__ = "0.1.0"

__all__ = ["Broker", "Producer", "RecordMetadata", "FutureRecordMetadata", "Record", "TopicConfig",
           "resolve_data_dir", "__version__", *_errors_all]
