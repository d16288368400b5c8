"""Tools built on the public library: the console consumer and producer (``console``,
``publish``), ``inspect``, ``demo``, the order ``generator``, text output (``render``,
``pretty``) and the perf tools (``bench*``); ``publish_cluster`` and ``bench_cluster`` do
``publish`` and ``bench`` against a Kafka cluster given to them. Only the command line imports them."""
