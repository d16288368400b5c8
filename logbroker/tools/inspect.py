"""Dump and verify segment files, like Kafka's ``kafka-dump-log`` (no broker needed).

``inspect_path`` accepts a ``.log``, an ``.index``, a ``.timeindex`` or a partition directory and
returns a plain dict (the CLI prints it as text or JSON). Verification reads every byte: each line
checksum (not only the per-batch ones readers use), offset order (contiguous inside a batch and in
the active segment; closed segments may have gaps between batches after compaction, counted as
``gaps`` and ``missing_offsets``), and each index entry against the log. Problems are listed with file, position and offset; ``ok`` is False when any was found.
"""

from __future__ import annotations

import os
import re
from typing import Any


from ..storage import fsutil
from ..storage.recovery import check_partition
from ..storage.config import TopicConfig
from ..storage.checkpoint import STATE_NAME, StateFile
from ..storage.index import decode_offset_index, decode_time_index, index_entry_count
from ..storage.record import BadBatch, batch_raw_lines, parse_line
from ..storage.segment import CHUNK, index_name, iter_batches, list_segments, log_name, timeindex_name

__all__ = ["inspect_path"]


def inspect_path(path: str, records: bool = False) -> dict[str, Any]:
    """Describe ``path``; with ``records`` include every record of a ``.log``."""
    if os.path.islink(path):
        return {"path": path, "ok": False, "problems": [f"{path} is a symbolic link; not followed"]}
    if os.path.isdir(path):
        if not (list_segments(path) or os.path.exists(os.path.join(path, STATE_NAME))
                or re.fullmatch(r"[a-zA-Z0-9._-]+-[0-9]+", os.path.basename(os.path.normpath(path)))):
            return {"path": path, "ok": False, "problems": [
                f"{path} is not a logbroker partition directory (no segment, no {STATE_NAME}, and not "
                f"named <topic>-<partition>)"]}
        return _inspect_partition(path, records)
    if not os.path.exists(path):
        return {"path": path, "ok": False, "problems": [f"{path} does not exist"]}
    name = os.path.basename(path)
    if name.endswith(".log"):
        return _inspect_log(path, records)
    if name.endswith(".index"):
        return _inspect_index(path)
    if name.endswith(".timeindex"):
        return _inspect_timeindex(path)
    if name == STATE_NAME:
        return _inspect_state(os.path.dirname(path))
    return {"path": path, "ok": False, "problems": [f"{path} is not a logbroker segment, index or partition directory"]}


def _base_of(path: str) -> int:
    stem = os.path.basename(path).split(".")[0]
    return int(stem) if stem.isdigit() else 0


def _inspect_log(path: str, with_records: bool, gaps: bool = True) -> dict[str, Any]:
    """Verify one ``.log``. ``gaps``: batches may start above the offset after the previous one (a
    closed segment the cleaner compacted); inside a batch offsets are always consecutive."""
    base = _base_of(path)
    size = os.path.getsize(path)
    out: dict[str, Any] = {"path": path, "kind": "log", "base_offset": base, "size": size,
                           "batches": [], "problems": [], "gaps": 0, "missing_offsets": 0}
    expected = base
    count = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        for buf, start, first, rest, end, fpos in iter_batches(fd, 0, size, CHUNK):
            lines = batch_raw_lines(buf, start, end)
            batch = {"position": fpos + start, "base_offset": first["offset"], "count": len(lines),
                     "bytes": end - start, "crc_valid": True}
            timestamps = []
            for i, line in enumerate(lines):
                try:
                    rec = parse_line(bytes(line))
                except ValueError as exc:
                    batch["crc_valid"] = False
                    out["problems"].append(f"{path}: line {i} of the batch at position {fpos + start}: {exc}")
                    continue
                if rec["offset"] > expected and gaps and i == 0:
                    out["gaps"] += 1
                    out["missing_offsets"] += rec["offset"] - expected
                elif rec["offset"] != expected:
                    out["problems"].append(f"{path}: position {fpos + start}: offset {rec['offset']} where "
                                           f"{expected} was expected")
                expected = rec["offset"] + 1
                timestamps.append(rec["timestamp"])
                if with_records:
                    batch.setdefault("records", []).append(
                        {k: rec.get(k) for k in ("offset", "timestamp", "key", "headers", "value")})
            batch["last_offset"] = expected - 1
            batch["max_timestamp"] = max(timestamps) if timestamps else -1
            out["batches"].append(batch)
            count += len(lines)
    except BadBatch as exc:
        out["problems"].append(f"{path}: invalid bytes at position {exc.position} (next offset {expected}): "
                               f"{exc.reason}; {size - exc.position} bytes to the end of the file")
        out["invalid_position"] = exc.position
    finally:
        os.close(fd)
    out["records"] = count
    out["next_offset"] = expected
    out["index_entries"] = _index_count(path)
    out["ok"] = not out["problems"]
    return out


def _index_count(log_path: str) -> int | None:
    """Entries in the ``.index`` beside a ``.log`` (None when it has none): the same number whether
    the file or its partition directory is inspected."""
    try:
        return index_entry_count(os.path.getsize(log_path[:-len(".log")] + ".index"))
    except FileNotFoundError:
        return None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _inspect_index(path: str, log_size: int | None = None) -> dict[str, Any]:
    base = _base_of(path)
    raw = _read(path)
    problems = []
    decoded, torn = decode_offset_index(raw, base)
    if torn:
        problems.append(f"{path}: size {len(raw)} ends in {torn} bytes that are not a whole entry")
    entries = []
    prev = (-1, -1)
    for offset, pos in decoded:
        entries.append({"offset": offset, "position": pos})
        if offset <= prev[0] or pos <= prev[1]:
            problems.append(f"{path}: entry for offset {offset} at position {pos} is not increasing")
        if log_size is not None and pos >= log_size:
            problems.append(f"{path}: entry for offset {offset} points past the log end ({pos} >= {log_size})")
        prev = (offset, pos)
    return {"path": path, "kind": "index", "base_offset": base, "entries": entries, "problems": problems,
            "ok": not problems}


def _inspect_timeindex(path: str) -> dict[str, Any]:
    base = _base_of(path)
    raw = _read(path)
    problems = []
    decoded, torn = decode_time_index(raw, base)
    if torn:
        problems.append(f"{path}: size {len(raw)} ends in {torn} bytes that are not a whole entry")
    entries = []
    prev = None
    for ts, offset in decoded:
        entries.append({"max_timestamp_before": ts, "offset": offset})
        if prev is not None and ts < prev:
            problems.append(f"{path}: timestamp {ts} for offset {offset} goes backwards")
        prev = ts
    return {"path": path, "kind": "timeindex", "base_offset": base, "entries": entries, "problems": problems,
            "ok": not problems}


def _inspect_state(directory: str) -> dict[str, Any]:
    sf = StateFile(directory)
    try:
        state = sf.read_or_none()
    finally:
        sf.close()
    if state is None:
        return {"path": os.path.join(directory, STATE_NAME), "kind": "state", "state": None,
                "problems": [], "ok": True}
    return {"path": os.path.join(directory, STATE_NAME), "kind": "state",
            "state": {f: getattr(state, f) for f in state.__slots__}, "problems": [], "ok": True}


def _inspect_partition(directory: str, with_records: bool) -> dict[str, Any]:
    """Every segment dumped, and the verdict of :func:`~logbroker.storage.recovery.check_partition`: the same
    check ``recover`` acts on, so ``ok`` is True exactly when recover would change nothing."""
    out: dict[str, Any] = {"path": directory, "kind": "partition", "segments": [], "problems": []}
    out["state"] = _inspect_state(directory)["state"]
    for base in list_segments(directory):
        seg = _inspect_log(os.path.join(directory, log_name(base)), with_records)
        out["segments"].append(seg)
    check = _check(directory)
    out.update(high_watermark=check.high_watermark, log_end_offset=check.log_end_offset,
               log_start_offset=check.log_start_offset, state_problem=check.state_problem,
               repairs=check.repairs, damage=check.damage, notes=check.notes, verdict=check.verdict,
               writer_active=check.writer_active)
    if check.high_watermark is not None and check.log_end_offset > check.high_watermark:
        out["past_high_watermark"] = check.log_end_offset - check.high_watermark
    out["problems"] = check.damage + check.repairs
    out["ok"] = check.ok
    return out


def _check(directory: str):
    """The partition check, with ``writer_active`` when a writer was at work during it: it held the
    partition lock before or after the scan, or the partition state changed meanwhile (then the
    tail's findings may be a write in flight, and are notes, not repairs)."""
    name = os.path.basename(os.path.normpath(directory))
    topic, _, number = name.rpartition("-")
    partition = int(number) if number.isdigit() else 0
    interval = TopicConfig().index_interval_bytes
    before = fsutil.read_file(os.path.join(directory, STATE_NAME))
    busy = _writer_active(directory)
    check = check_partition(directory, topic, partition, interval, writer_active=busy)
    if not busy and (_writer_active(directory) or fsutil.read_file(os.path.join(directory, STATE_NAME)) != before):
        check = check_partition(directory, topic, partition, interval, writer_active=True)
    return check


def _writer_active(directory: str) -> bool:
    """Whether a process holds the partition lock right now (probed, never held: a long scan must
    not stall producers)."""
    path = os.path.join(directory, ".lock")
    if not os.path.exists(path):
        return False
    try:
        lock = fsutil.try_lock_path(path)
    except OSError:
        return False  # a read-only directory: nobody writes through it
    if lock is None:
        return True
    lock.close()
    return False
