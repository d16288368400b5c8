"""The commands that look after partition logs on disk: ``inspect`` (like kafka-dump-log, with the
library's own checker behind ``--verify``), ``retention``, ``compact``, ``delete-records`` (like
kafka-delete-records) and ``recover``. Each is one call of :class:`~logbroker.broker.Broker` (or of
:func:`logbroker.tools.inspect.inspect_path`) and a summary rendered by
:mod:`logbroker.tools.render`; found damage exits 3.
"""

from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.options import EveryTopic, Json, MaxBlockMs
from logbroker.cli.output import err, print_json
from logbroker.cli.target import broker, nothing_in

__all__ = ["inspect", "retention", "compact", "delete_records", "recover"]


def inspect(
    path: Annotated[str, typer.Argument(help="A .log, .index or .timeindex file, or a partition directory.")],
    verify: Annotated[bool, typer.Option("--verify", help="Check every byte as recover would; print a verdict, exit 3 unless OK.")] = False,
    print_records: Annotated[bool, typer.Option("--print-records", help="Include every record (like --print-data-log).")] = False,
    json: Json = False,
) -> None:
    """Dump segment files like kafka-dump-log.  Example: logbroker inspect segments/orders/orders-0 --verify"""
    from logbroker.tools.inspect import inspect_path
    report = inspect_path(path, records=print_records)
    if "kind" not in report:  # missing, a symlink, or not a logbroker file: nothing was inspected
        raise errors.LogBrokerError("; ".join(report.get("problems", [])) or f"cannot inspect {path}", path=path)
    if json:
        print_json(report)
    else:
        from logbroker.tools.render import inspect_report
        typer.echo(inspect_report(report))
    if verify and not report.get("ok", False):
        # stderr gets what is wrong; the verdict line ends stdout (the same check recover acts on).
        for p in report.get("damage", report.get("problems", [])):
            err(f"corruption: {p}")
        for p in report.get("repairs", []):
            err(f"needs recovery: {p}")
        raise typer.Exit(3)


def retention(
    topic: EveryTopic = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be deleted.")] = False,
    max_block_ms: MaxBlockMs = 60000,
) -> None:
    """Apply retention.ms / retention.bytes now, then compact compacted topics.  Example: logbroker retention orders --dry-run"""
    from logbroker.tools.render import compact_summary, retention_summary
    b = broker(max_block_ms=max_block_ms)
    reports = b.apply_retention(topic, dry_run=dry_run)
    if not reports:
        err(nothing_in(b, "topics"))
        return
    typer.echo(retention_summary(reports, dry_run))
    if topic is None or b.topic(topic).config.compact:
        cleaned = b.compact(topic, dry_run=dry_run)
        if cleaned:
            typer.echo(compact_summary(cleaned, dry_run))


def compact(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (default: every topic with cleanup.policy=compact).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what a pass would do.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clean whatever the dirty ratio (min.compaction.lag.ms still applies).")] = False,
    json: Json = False,
) -> None:
    """Run one log-compaction pass: keep the latest record per key.  Example: logbroker compact profiles --dry-run"""
    from logbroker.tools.render import compact_summary
    reports = broker().compact(topic, dry_run=dry_run, force=force)
    if json:
        print_json([r.to_dict() for r in reports])
    else:
        typer.echo(compact_summary(reports, dry_run))


def delete_records(
    topic: Annotated[Optional[str], typer.Argument(help="Topic (or use --offset-json-file).")] = None,
    partition: Annotated[Optional[int], typer.Option("--partition", "-p", help="Partition.")] = None,
    before_offset: Annotated[Optional[int], typer.Option(
        "--before-offset", help="New log start offset; -1 means the high watermark.")] = None,
    offset_json_file: Annotated[Optional[str], typer.Option(
        "--offset-json-file", help='Kafka\'s file: {"partitions":[{"topic":..,"partition":..,"offset":..}],"version":1}.')] = None,
) -> None:
    """Delete records below an offset (advance the log start offset).  Example: logbroker delete-records orders --partition 0 --before-offset 100"""
    from logbroker.tools.render import delete_records_summary
    if offset_json_file is not None:
        if topic is not None or partition is not None or before_offset is not None:
            raise errors.InvalidConfigError("give either --offset-json-file or TOPIC --partition --before-offset")
        from logbroker.groups.admin import parse_offsets_json
        try:
            with open(offset_json_file, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise errors.InvalidConfigError(f"cannot read {offset_json_file}: {exc.strerror}") from None
        offsets = parse_offsets_json(data, offset_json_file)
    elif topic is None or partition is None or before_offset is None:
        raise errors.InvalidConfigError("delete-records needs TOPIC --partition P --before-offset N "
                                        "(or --offset-json-file FILE)")
    else:
        offsets = [(topic, partition, before_offset)]
    typer.echo(delete_records_summary(broker().delete_records(offsets)))


def recover(
    topic: EveryTopic = None,
    max_block_ms: MaxBlockMs = 60000,
) -> None:
    """Check and repair partitions now: torn tails, lost state files, indexes, leftovers; exit 3 when damage was left alone.  Example: logbroker recover orders"""
    from logbroker.tools.render import recover_problems, recover_summary
    b = broker(max_block_ms=max_block_ms)
    reports = b.recover(topic)
    if not reports:
        err(nothing_in(b, "topics"))
        return
    summary = recover_summary(reports)
    if summary:
        typer.echo(summary)
    problems = recover_problems(reports)
    for p in problems:
        err(f"error: {p}")
    if problems:
        raise typer.Exit(3)
