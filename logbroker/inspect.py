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


from .checkpoint import CLEANER_NAME, STATE_NAME, StateFile
from .index import INDEX_ENTRY, TIME_ENTRY
from .record import BadBatch, parse_line
from .segment import CHUNK, index_name, iter_batches, list_segments, log_name, timeindex_name

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
            lines = [buf[start:rest - 1]]
            if end > rest:
                lines.extend(buf[rest:end - 1].split(b"\n"))
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
    out["ok"] = not out["problems"]
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _inspect_index(path: str, log_size: int | None = None) -> dict[str, Any]:
    base = _base_of(path)
    raw = _read(path)
    problems = []
    if len(raw) % INDEX_ENTRY.size:
        problems.append(f"{path}: size {len(raw)} is not a multiple of {INDEX_ENTRY.size}")
    entries = []
    prev = (-1, -1)
    for rel, pos in INDEX_ENTRY.iter_unpack(raw[:len(raw) - len(raw) % INDEX_ENTRY.size]):
        entries.append({"offset": base + rel, "position": pos})
        if rel <= prev[0] or pos <= prev[1]:
            problems.append(f"{path}: entry for offset {base + rel} at position {pos} is not increasing")
        if log_size is not None and pos >= log_size:
            problems.append(f"{path}: entry for offset {base + rel} points past the log end ({pos} >= {log_size})")
        prev = (rel, pos)
    return {"path": path, "kind": "index", "base_offset": base, "entries": entries, "problems": problems,
            "ok": not problems}


def _inspect_timeindex(path: str) -> dict[str, Any]:
    base = _base_of(path)
    raw = _read(path)
    problems = []
    if len(raw) % TIME_ENTRY.size:
        problems.append(f"{path}: size {len(raw)} is not a multiple of {TIME_ENTRY.size}")
    entries = []
    prev = None
    for ts, rel in TIME_ENTRY.iter_unpack(raw[:len(raw) - len(raw) % TIME_ENTRY.size]):
        entries.append({"max_timestamp_before": ts, "offset": base + rel})
        if prev is not None and ts < prev:
            problems.append(f"{path}: timestamp {ts} for offset {base + rel} goes backwards")
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
    out: dict[str, Any] = {"path": directory, "kind": "partition", "segments": [], "problems": []}
    out["state"] = _inspect_state(directory)["state"]
    bases = list_segments(directory)
    # Gaps are expected only in a partition the cleaner has worked on (it writes its checkpoint
    # before its first swap); anywhere else a missing offset is damage.
    compacted = os.path.exists(os.path.join(directory, CLEANER_NAME))
    expected = None
    for base in bases:
        log_path = os.path.join(directory, log_name(base))
        seg = _inspect_log(log_path, with_records, gaps=compacted and base != bases[-1])
        if expected is not None and (base < expected or (base > expected and not compacted)):
            seg["problems"].append(f"{log_path}: segment starts at {base} but the previous one ends before {expected}")
        elif expected is not None and base > expected:
            out["segments"][-1]["gaps"] += 1
            out["segments"][-1]["missing_offsets"] += base - expected
        idx_path = os.path.join(directory, index_name(base))
        tidx_path = os.path.join(directory, timeindex_name(base))
        if os.path.exists(idx_path):
            idx = _inspect_index(idx_path, seg["size"])
            seg["index_entries"] = len(idx["entries"])
            seg["problems"].extend(idx["problems"])
            positions = {b["position"] for b in seg["batches"]}
            for e in idx["entries"]:
                if e["position"] not in positions:
                    seg["problems"].append(f"{idx_path}: entry for offset {e['offset']} points at position "
                                           f"{e['position']}, which is not a batch start")
        else:
            seg["problems"].append(f"{idx_path} is missing (recovery rebuilds it)")
        if os.path.exists(tidx_path):
            tidx = _inspect_timeindex(tidx_path)
            seg["timeindex_entries"] = len(tidx["entries"])
            seg["problems"].extend(tidx["problems"])
        expected = seg["next_offset"]
        out["segments"].append(seg)
        out["problems"].extend(seg["problems"])
    out["ok"] = not out["problems"]
    return out
