"""The logbroker command line: a thin shell over the ``logbroker`` library.

Each command parses its options, makes one library call and renders the result: records to stdout
as JSON lines, diagnostics to stderr. Errors from the library become one line on stderr and a
non-zero exit code in one place, :func:`logbroker.cli.root.main` (2 for bad input, 3 for corruption
found by ``inspect --verify``, 1 otherwise).

The modules, one concept each: ``root`` (the root command, ``--data-dir``, error handling),
``target`` (the data directory or Kafka cluster a command runs against), ``output`` (stdout,
stderr, progress), ``options`` and ``kafka_options`` (option declarations shared by commands),
``typer_plain`` (start-up without pydantic), and a module per command group: ``topics``,
``groups``, ``publish``, ``consume`` (consume, replay), ``examples`` (generate, demo),
``maintenance`` (inspect, retention, compact, delete-records, recover), ``serve``, ``mirror``,
``bench``. This file registers the commands, in the order ``--help`` lists them.

Start-up matters for a tool run in pipelines: only logbroker.errors of the library is imported
here. Each command imports the library modules it needs, help is formatted by click
(rich_markup_mode=None, no rich), and typer_plain coerces parameters without pydantic.
"""

from logbroker.cli import bench, consume, examples, groups, maintenance, mirror, publish, serve, topics
from logbroker.cli.root import app, main
from logbroker.cli.target import ENV_DATA_DIR

__all__ = ["app", "main", "ENV_DATA_DIR"]

for command in (publish.publish, examples.generate, consume.consume, consume.replay, examples.demo,
                maintenance.inspect, maintenance.retention, maintenance.compact, maintenance.delete_records,
                maintenance.recover, serve.serve, mirror.mirror):
    app.command(command.__name__.replace("_", "-"))(command)
app.add_typer(topics.topics_app, name="topics")
app.add_typer(groups.groups_app, name="groups")
app.add_typer(bench.bench_app, name="bench")
del command
