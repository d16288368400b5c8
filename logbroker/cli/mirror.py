"""``logbroker mirror``: topics and consumer groups' positions of the data directory copied into a
Kafka cluster, exactly once, resumable; one :class:`~logbroker.remote.mirror.Mirror` run (or its
dry run), with a progress bar per topic on a terminal and a summary on stdout.
"""

import sys
from typing import Annotated, List, Optional

import typer

from logbroker import errors
from logbroker.cli.output import err, progress_enabled
from logbroker.cli.target import state

__all__ = ["mirror"]


def mirror(
    topics: Annotated[Optional[List[str]], typer.Argument(help="Topics to copy (default: every topic).")] = None,
    to_bootstrap_server: Annotated[str, typer.Option(
        "--to-bootstrap-server", metavar="HOST:PORT[,HOST:PORT]", help="The Kafka cluster to copy into.")] = ...,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Keep copying new records and group commits until Ctrl+C or SIGTERM.")] = False,
    groups: Annotated[Optional[str], typer.Option(
        "--groups", metavar="G,...", help="Translate only these groups' committed offsets.")] = None,
    all_groups: Annotated[bool, typer.Option(
        "--all-groups", help="Translate every group with committed offsets on the topics (the default).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be created, copied and translated; send nothing.")] = False,
    command_config: Annotated[Optional[str], typer.Option(
        "--command-config", metavar="FILE",
        help="Kafka client properties file (security.protocol, sasl.*, ssl.*).")] = None,
    timeout_ms: Annotated[int, typer.Option(
        "--timeout-ms", help="How long to wait for the cluster's answers.")] = 10000,
) -> None:
    """Copy topics and consumer groups' positions into a Kafka cluster, exactly once; rerun to resume.

    Each partition goes into the same partition (keys, timestamps, headers and value bytes kept);
    a source log that starts at offset N lands at target offset 0, and group offsets are translated
    to match, committed only while the group has no live member on the cluster.

    Example: logbroker mirror --to-bootstrap-server broker1:9092 orders --groups billing
    """
    import signal
    import threading
    from logbroker.remote.connect import resolve_bootstrap
    from logbroker.remote.mirror import Mirror
    from logbroker.tools.render import mirror_plan, mirror_summary, progress_bar
    if groups is not None and all_groups:
        raise errors.InvalidConfigError("--groups and --all-groups contradict each other; give one")
    bootstrap = resolve_bootstrap(to_bootstrap_server)
    if bootstrap is None:
        raise errors.InvalidConfigError("--to-bootstrap-server must name HOST:PORT")
    names = None if groups is None else [g.strip() for g in groups.split(",") if g.strip()]
    bar = {"label": None, "text": ""}

    def on_progress(topic: str, done: int, total: int) -> None:
        if not progress_enabled():
            return
        text = progress_bar(topic, done, total)
        if bar["label"] not in (None, topic):
            sys.stderr.write("\n")
        sys.stderr.write("\r" + text)
        sys.stderr.flush()
        bar["label"], bar["text"] = topic, text

    m = Mirror(state.data_dir, bootstrap, topics, groups=names, command_config=command_config,
               timeout_s=timeout_ms / 1000, on_progress=on_progress)
    if dry_run:
        report = m.dry_run()
        typer.echo(mirror_plan(report))
    else:
        stop = threading.Event()
        interrupted = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, frame: (interrupted.append(number), stop.set()))
        try:
            report = m.run(follow=follow, stop=stop)
        finally:
            if bar["label"] is not None:
                sys.stderr.write("\n")
        if interrupted and not follow:
            err(mirror_summary(report))
            raise typer.Exit(130)
    typer.echo(mirror_summary(report))
