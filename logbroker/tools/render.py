"""Text for people: the tables and dumps that ``logbroker`` prints, from what the library returns.

The CLI is a thin shell (parse -> one library call -> render); this module is the render step, pure
functions from library results to ``str`` (or ``bytes`` for records), so output is tested without a
terminal or typer. Columns follow the Kafka tool each command imitates (kafka-topics,
kafka-consumer-groups, kafka-dump-log). Records are formatted by :mod:`logbroker.tools.pretty`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from ..errors import InvalidConfigError

__all__ = ["table", "size", "plural", "config_text", "topic_description", "group_description", "AUTO_COMMIT_NOTE",
           "reset_plan", "inspect_report", "retention_summary", "compact_summary", "delete_records_summary", "recover_summary", "recover_problems",
           "publish_summary", "record_formatter", "RECORD_FORMATS",
           "PRINT_PROPERTIES", "parse_properties", "kafka_line",
           "mirror_plan", "mirror_summary", "progress_bar"]

RECORD_FORMATS = ("json", "envelope", "pretty")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, like the Kafka tools; no trailing blanks."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def size(n: float) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``16.0 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 record``, ``2 records``, ``1,000 records``: a count with its noun agreeing."""
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"


def _dash(v: object) -> object:
    return "-" if v is None else v


def config_text(config: dict[str, Any]) -> str:
    """A topic config as kafka-topics prints it: ``segment.bytes=1048576,retention.ms=...``."""
    return ",".join(f"{k}={v}" for k, v in config.items())


def topic_description(info: dict[str, Any]) -> str:
    """``topics describe``: kafka-topics' summary line, then one row per partition (SEGMENTS and
    SIZE are "-" for a cluster, whose protocol does not tell them)."""
    cfg = config_text(info["config"])
    rows = [[p["partition"], p["log_start_offset"], p["log_end_offset"], p["records"],
             _dash(None if p["segments"] is None else len(p["segments"])),
             _dash(None if p["size"] is None else size(p["size"]))] for p in info["partition_details"]]
    return (f"Topic: {info['topic']}\tPartitionCount: {info['partitions']}\tConfigs: {cfg}\n"
            + table(["PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "RECORDS", "SEGMENTS", "SIZE"], rows))


def group_description(group: str, rows: Sequence[Any], members: Sequence[Any] = ()) -> str:
    """``groups describe``: one row per partition of :func:`logbroker.groups.admin.describe_group` (Kafka's
    columns, plus LAG-TIME and the owner's PID), then a row per idle live member (``members`` of
    :func:`logbroker.groups.admin.group_members` that own no partition), as kafka-consumer-groups does."""
    cells = [[r.topic, r.partition, _dash(r.current_offset), r.log_end_offset, _dash(r.lag),
              "-" if r.lag_ms is None else f"{r.lag_ms / 1000:.1f}s", _dash(r.consumer_id), _dash(r.host),
              _dash(r.pid), _dash(r.client_id)] for r in rows]
    cells += [[m.topic, "-", "-", "-", "-", "-", m.consumer_id, m.host, m.pid, m.client_id]
              for m in members if not m.partitions]
    return f"GROUP {group}\n" + table(
        ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-TIME", "CONSUMER-ID", "HOST", "PID",
         "CLIENT-ID"], cells)


#: Why a live group's CURRENT-OFFSET trails what its consumers printed (Kafka's auto-commit).
AUTO_COMMIT_NOTE = ("Note: live consumers commit every 5 s (auto-commit) and when they stop, so CURRENT-OFFSET "
                    "and LAG can trail what they have already printed by up to 5 s.")


def reset_plan(group: str, plan: Iterable[Any]) -> str:
    """``groups reset-offsets``: the plan, executed or not."""
    return table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                 [[group, r.topic, r.partition, _dash(r.old), r.new] for r in plan])


def inspect_report(report: dict[str, Any]) -> str:
    """``inspect``: a report of :func:`logbroker.tools.inspect.inspect_path`, like kafka-dump-log."""
    lines: list[str] = []
    kind = report.get("kind")
    if kind == "partition":
        lines.append(f"Partition directory: {report['path']}")
        if report.get("state"):
            s = report["state"]
            lines.append(f"  log end offset: {s['log_end_offset']}  high watermark: {s['high_watermark']}  "
                         f"active segment: {s['active_base']}")
        for seg in report["segments"]:
            _log_lines(seg, lines)
    elif kind == "log":
        _log_lines(report, lines)
    elif kind in ("index", "timeindex"):
        lines.append(f"Dumping {report['path']}")
        for e in report["entries"]:
            lines.append("  " + " ".join(f"{k}: {v}" for k, v in e.items()))
    elif kind == "state":
        lines.append(f"{report['path']}: {report['state']}")
    if kind == "partition":
        hw = report.get("high_watermark")
        lines.append(f"  scanned log end offset: {report['log_end_offset']}  recorded high watermark: "
                     f"{'-' if hw is None else hw}" + (f" (partition state {report['state_problem']})"
                                                       if report.get("state_problem") else "")
                     + (f"  records past the high watermark: {report['past_high_watermark']}"
                        if report.get("past_high_watermark") else ""))
        lines.extend(f"DAMAGE: {p}" for p in report["damage"])
        lines.extend(f"RECOVER WOULD: {p}" for p in report["repairs"])
        lines.extend(f"NOTE: {p}" for p in report["notes"])
        lines.append(report["verdict"])
    else:
        lines.extend(f"PROBLEM: {p}" for p in report.get("problems", []))
        if kind == "log":
            lines.append("OK" if report.get("ok") else f"NOT OK: {len(report['problems'])} problem(s)")
    return "\n".join(lines)


def _log_lines(seg: dict[str, Any], lines: list[str]) -> None:
    import orjson
    lines.append(f"Dumping {seg['path']}  ({plural(seg['records'], 'record')}, {plural(seg['size'], 'byte')}, "
                 f"index entries: {seg.get('index_entries', '-')})")
    for b in seg["batches"]:
        lines.append(f"  baseOffset: {b['base_offset']} lastOffset: {b['last_offset']} count: {b['count']} "
                     f"position: {b['position']} size: {b['bytes']} maxTimestamp: {b['max_timestamp']} "
                     f"crcValid: {str(b['crc_valid']).lower()}")
        for r in b.get("records", []):
            # Key, headers and value as JSON (null, {}, "text"): never a Python repr.
            lines.append(f"  | offset: {r['offset']} timestamp: {r['timestamp']} key: {orjson.dumps(r['key']).decode()} "
                         f"headers: {orjson.dumps(r['headers'] or {}).decode()} value: {orjson.dumps(r['value']).decode()}")


def retention_summary(reports: Iterable[Any], dry_run: bool) -> str:
    """``retention``: one line per partition that lost (or would lose) segments."""
    verb = "would delete" if dry_run else "deleted"
    reports = list(reports)
    lines = [f"{r.topic}-{r.partition}: {verb} {plural(len(r.deleted), 'segment')} ({plural(r.bytes_freed, 'byte')}, "
             f"{r.reason}); log start offset {r.log_start_offset}" for r in reports if r.deleted]
    if lines or not reports:
        return "\n".join(lines) or "Nothing to delete."
    return "\n".join(["Nothing to delete:", *(f"  {r.topic}-{r.partition}: {r.reason}" for r in reports)])


def compact_summary(reports: Sequence[Any], dry_run: bool) -> str:
    """``compact``: one row per partition: whether a pass ran, and what it did or would do."""
    rows = [[f"{r.topic}-{r.partition}", ("would clean" if r.dry_run else "cleaned") if r.ran else "skipped",
             f"{r.dirty_ratio:.2f}", f"{r.segments_before}->{r.segments_after}",
             f"{r.records_before}->{r.records_after}", r.tombstones_removed, size(r.bytes_reclaimed), r.reason]
            for r in reports]
    if not rows:
        return "No compacted topic (set cleanup.policy=compact)."
    head = "DRY RUN: nothing was changed.\n" if dry_run else ""
    return head + table(["PARTITION", "PASS", "DIRTY-RATIO", "SEGMENTS", "RECORDS", "TOMBSTONES-REMOVED",
                         "RECLAIMED", "REASON"], rows)


def delete_records_summary(reports: Sequence[Any]) -> str:
    """``delete-records``: kafka-delete-records' "low_watermark" per partition."""
    return "\n".join(f"partition: {r.topic}-{r.partition}\tlow_watermark: {r.log_start_offset}\t"
                     f"segments deleted: {len(r.deleted)}" for r in reports)


def recover_summary(reports: Sequence[Any]) -> str:
    """``recover``'s standard output: one line per repair made. The problems it left alone go to
    standard error (:func:`recover_problems`); with neither, a line saying all is clean."""
    lines = [f"{_subject(r)}: {a}" for r in reports for a in r.actions]
    if lines or any(getattr(r, "problems", ()) for r in reports):
        return "\n".join(lines)
    partitions = sum(1 for r in reports if not getattr(r, "subject", ""))
    return "The only partition is clean." if partitions == 1 else f"All {partitions} partitions are clean."


def recover_problems(reports: Sequence[Any]) -> list[str]:
    """What ``recover`` found and left alone, one line each, with the command that gets out of it."""
    return [f"{_subject(r)}: {p}" for r in reports for p in getattr(r, "problems", ())]


def _subject(report: Any) -> str:
    return getattr(report, "subject", "") or f"{report.topic}-{report.partition}"


def publish_summary(summary: Any, topic: str) -> str:
    """``publish``'s closing line: what was acknowledged, per partition with its last offset.

    Printed on every exit path (Ctrl+C, a failed write, any error), so that a rerun can skip the
    lines already published: only acknowledged records are counted."""
    last = getattr(summary, "last_offsets", {})
    per = ", ".join(f"{p}: {n}" + (f" (last offset {last[p]})" if p in last else "")
                    for p, n in sorted(summary.per_partition.items()))
    not_acked = getattr(summary, "not_acknowledged", 0)
    failed = summary.failed + not_acked
    total = summary.published + failed
    rate = 100.0 * summary.published / total if total else 100.0
    head = ""
    if getattr(summary, "interrupted", False):
        head = f"Interrupted after line {summary.lines_read:,}. " if summary.lines_read else "Interrupted. "
    text = (f"{head}Published {plural(summary.published, 'record')} to {topic} ({failed:,} failed, "
            f"{rate:.1f}% success)" + (f"; per partition: {per}" if per else ""))
    if not_acked:
        text += f"; {not_acked:,} not acknowledged"
    skipped = getattr(summary, "skipped", 0)
    if skipped:
        text += f"; {plural(skipped, 'empty line')} skipped"
    return text


#: kafka-console-consumer's --property names (its DefaultMessageFormatter) that logbroker honours.
PRINT_PROPERTIES = ("print.timestamp", "print.partition", "print.offset", "print.headers", "print.key",
                    "print.value", "key.separator")


def parse_properties(pairs: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    """``--property k=v`` pairs as a dict; values are kept verbatim (a separator may be a space)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidConfigError(f"--property {pair!r} is not of the form name=value")
        if name not in known:
            raise InvalidConfigError(f"--property {name} is not supported; known: {', '.join(known)}")
        out[name] = value
    return out


def _flag(props: dict[str, str], name: str, default: bool) -> bool:
    value = props.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise InvalidConfigError(f"--property {name}={value}: use true or false")
    return value.lower() == "true"


def kafka_line(props: dict[str, str]) -> Callable[[Any], bytes]:
    """A record as kafka-console-consumer prints it with ``--property print.*=true``: the chosen
    fields in Kafka's order (CreateTime:ts, Partition:p, Offset:o, headers k:v,k:v or NO_HEADERS,
    the key or null, the value), separated by ``key.separator`` (a tab by default)."""
    from .pretty import format_value
    sep = props.get("key.separator", "\t").encode()
    show = [f for f in ("timestamp", "partition", "offset", "headers", "key") if _flag(props, f"print.{f}", False)]
    value = _flag(props, "print.value", True)

    def fields(record: Any):
        for f in show:
            if f == "timestamp":
                yield f"CreateTime:{record.timestamp}".encode()
            elif f == "partition":
                yield f"Partition:{record.partition}".encode()
            elif f == "offset":
                yield f"Offset:{record.offset}".encode()
            elif f == "headers":
                headers = record.headers or {}
                yield ",".join(f"{k}:{v}" for k, v in headers.items()).encode() if headers else b"NO_HEADERS"
            else:
                yield b"null" if record.key is None else str(record.key).encode()
        if value:
            yield format_value(record.value)
    return lambda record: sep.join(fields(record)) + b"\n"


def record_formatter(fmt: str, properties: dict[str, str] | None = None) -> Callable[[Any, int], bytes]:
    """``consume`` / ``replay`` output: (record, its number in this run) -> one line of bytes.

    json: the value alone (kafka-console-consumer's default), or with ``properties`` the fields
    :func:`kafka_line` prints; envelope: offset, key, timestamp, headers and value; pretty:
    :func:`logbroker.tools.pretty.format_pretty`'s block.
    """
    from .pretty import format_envelope, format_pretty, format_value
    if properties and fmt != "json":
        raise InvalidConfigError(f"--property applies to --format json (Kafka's output), not {fmt}")
    if fmt == "json" and properties:
        line = kafka_line(properties)
        return lambda record, n: line(record)
    if fmt == "json":
        return lambda record, n: format_value(record.value) + b"\n"
    if fmt == "envelope":
        return lambda record, n: format_envelope(record) + b"\n"
    if fmt == "pretty":
        return lambda record, n: format_pretty(record, n).encode() + b"\n"
    raise InvalidConfigError(f"--format must be json, envelope or pretty, not {fmt!r}")


def mirror_plan(report: Any) -> str:
    """``mirror --dry-run``: what would be created, copied and translated, one line each."""
    lines = []
    for t in report.topics:
        if t.create:
            configs = f", {config_text(t.configs)}" if t.configs else ""
            lines.append(f"would create topic {t.topic} ({plural(t.partitions, 'partition')}{configs})")
        for p in t.parts:
            if p.to_copy > 0:
                lines.append(f"would copy {t.topic}-{p.partition}: source offsets {p.start} to {p.source_end - 1} "
                             f"-> target offsets {p.target_end} to {p.source_end - 1 - p.base} "
                             f"({plural(p.to_copy, 'record')})")
            else:
                lines.append(f"nothing to copy in {t.topic}-{p.partition} (target log end offset {p.target_end})")
    for g in report.groups:
        moves = ", ".join(f"{i}: {s} -> {t}" for i, (s, t) in g.offsets.items())
        lines.append(f"would commit group {g.group} on {g.topic}: partition {moves}")
    return "\n".join(lines)


def mirror_summary(report: Any) -> str:
    """The final table of ``mirror``: per topic, records copied, partitions, groups translated."""
    heading = "RECORDS-TO-COPY" if report.dry_run else "RECORDS-COPIED"
    return table(["TOPIC", heading, "PARTITIONS", "GROUPS-TRANSLATED"],
                 [(topic, f"{n:,}", parts, groups) for topic, n, parts, groups in report.rows()])


def progress_bar(label: str, done: int, total: int, width: int = 30) -> str:
    """``orders [##########----------] 1,000/2,000``: one topic's copy on a terminal."""
    filled = width if total <= 0 else min(width, done * width // total)
    return f"{label} [{'#' * filled}{'-' * (width - filled)}] {done:,}/{total:,}"
