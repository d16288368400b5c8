"""A Kafka cluster as the other end: the same commands over ``--bootstrap-server`` and ``mirror``.

Everything here talks to a real Kafka cluster (Apache Kafka, Redpanda, a managed service, or
``logbroker serve``) through confluent-kafka, an optional extra (``pip install 'logbroker[kafka]'``).
Nothing below this package imports it; local commands never need it.
"""
