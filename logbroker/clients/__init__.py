"""The clients: :class:`~logbroker.clients.producer.Producer` (with its ``sender`` thread and
``partitioner``) and :class:`~logbroker.clients.consumer.Consumer`, over storage and groups."""
