"""Kafka's bytes in a record line: keys, values and headers that are not (only) JSON (FORMAT.md,
"Bytes keys, values and headers", record line format 2).

Kafka clients send keys and values as bytes and headers as an ordered list of (string, bytes)
pairs with repeats allowed. A line keeps them so that they come back byte for byte, while what is
JSON stays JSON for ``cat`` and ``jq``:

- a value that is JSON text in its canonical compact form (``orjson.dumps(orjson.loads(v)) == v``)
  is stored as that JSON, with no marker: exactly the line a native producer writes;
- a value that is other valid UTF-8 (kcat's ``v1``, JSON with spaces) is stored as a JSON string
  with ``"venc":"text"``; any other bytes as base64 in a JSON string with ``"venc":"base64"``; a
  null value (Kafka's tombstone) as ``null`` with ``"venc":"null"``, so it differs from the
  four bytes ``null``;
- a key that is valid UTF-8 is stored as a JSON string (what native keys are); other bytes as
  base64 with ``"kenc":"base64"``; a null key is ``null``;
- headers with distinct names and values that are UTF-8 or null are the usual object; otherwise
  (repeated names, bytes values) an array of ``[name, value]`` pairs in order, each value a string
  (UTF-8), ``null``, or ``{"base64": "..."}``.

Native readers (``raw=False``) see a marked value as ``bytes`` (``None`` for a null value), a
base64 key as ``bytes``; :func:`decode_marked` does that conversion for a batch.
"""

from __future__ import annotations

import binascii
from operator import eq
from typing import Any, Sequence

import orjson

from ..errors import InvalidRecordError

__all__ = ["encode_kafka", "encode_kafka_key", "canonical_json_values", "kafka_key", "kafka_value", "kafka_headers", "decode_marked", "kafka_record_line", "MARK"]

_loads = orjson.loads
_dumps = orjson.dumps

#: Bytes present in a batch only when one of its lines has a ``kenc`` or ``venc`` field (a cheap
#: pre-check; a value that merely contains them costs a look at each line's top-level fields).
MARK = b'enc":"'


def _b64(data: bytes) -> bytes:
    return b'"' + binascii.b2a_base64(data, newline=False) + b'"'


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_kafka(key: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None,
                 value: bytes | None) -> tuple[bytes, bytes, bytes]:
    """``(key_json, extras_json, value_json)`` of a record from a Kafka client.

    ``extras_json`` goes where a native line has its headers: the ``kenc``, ``headers`` and
    ``venc`` fields, each with its leading comma, those that apply. Raises InvalidRecordError for a
    header name that is not a str.
    """
    key_json, extras = encode_kafka_key(key)
    if headers:
        extras += b',"headers":' + _headers_json(headers)
    if value is None:
        return key_json, extras + b',"venc":"null"', b"null"
    value = bytes(value)
    try:
        canonical = _dumps(_loads(value)) == value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError):
        canonical = False
    if canonical:
        return key_json, extras, value
    text = _utf8(value)
    if text is None:
        return key_json, extras + b',"venc":"base64"', _b64(value)
    return key_json, extras + b',"venc":"text"', _dumps(text)


def encode_kafka_key(key: bytes | None) -> tuple[bytes, bytes]:
    """``(key_json, extras_json)`` of a Kafka key: extras is ``,"kenc":"base64"`` for bytes that
    are not UTF-8, else empty."""
    if key is None:
        return b"null", b""
    text = _utf8(key)
    if text is None:
        return _b64(key), b',"kenc":"base64"'
    return _dumps(text), b""


def canonical_json_values(values: list[bytes]) -> bool:
    """Whether every value is JSON text in its canonical compact form, the test :func:`encode_kafka`
    makes per value, made for a whole batch at once: the values joined as one JSON array are parsed
    once, and each element serialized again must give back exactly its value's bytes.

    Exact: a value equal to ``orjson.dumps`` of something is canonical, and the array has as many
    elements as there are values only if no value's bytes were split or merged by the joining. False
    means that at least one value is not canonical (or the batch is beyond what one parse takes, such as
    nesting near orjson's depth limit): test value by value then.
    """
    try:
        parsed = _loads(b"[%b]" % b",".join(values))
        # Compared one by one as made: orjson's outputs, kept, would grow the heap (see dumps_kept).
        return len(parsed) == len(values) and all(map(eq, map(_dumps, parsed), values))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError):
        return False


def _headers_json(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    names = [name for name, _ in headers]
    for name in names:
        if type(name) is not str:
            raise InvalidRecordError(f"a header name must be a string, not {type(name).__name__}")
    texts = [None if v is None else _utf8(v) for _, v in headers]
    if len(set(names)) == len(names) and all(t is not None or v is None for t, (_, v) in zip(texts, headers)):
        return _dumps(dict(zip(names, texts)))
    pairs = []
    for (name, value), text in zip(headers, texts):
        if value is None or text is not None:
            pairs.append([name, text])
        else:
            pairs.append([name, {"base64": binascii.b2a_base64(value, newline=False).decode("ascii")}])
    return _dumps(pairs)


def kafka_key(line: dict) -> bytes | None:
    """The key bytes a Kafka client gets for a parsed line (raw or native)."""
    key = line["key"]
    if key is None or type(key) is bytes:
        return key
    if line.get("kenc") == "base64":
        return binascii.a2b_base64(key)
    return key.encode("utf-8")


def kafka_value(line: dict, value_json: bytes) -> bytes | None:
    """The value bytes a Kafka client gets, from a line read raw (its value's JSON bytes)."""
    enc = line.get("venc")
    if enc is None:
        return value_json
    if enc == "null":
        return None
    if enc == "text":
        return _loads(value_json).encode("utf-8")
    if enc == "base64":
        return binascii.a2b_base64(_loads(value_json))
    raise InvalidRecordError(f"record at offset {line.get('offset')} has an unknown value encoding {enc!r}")


def kafka_headers(line: dict) -> list[tuple[str, bytes | None]]:
    """The headers a Kafka client gets: ordered (name, bytes or None) pairs."""
    headers = line.get("headers")
    if not headers:
        return []
    if isinstance(headers, dict):
        return [(k, None if v is None else v.encode("utf-8")) for k, v in headers.items()]
    return [(name, _header_value(value)) for name, value in headers]


def _header_value(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return binascii.a2b_base64(value["base64"])


def decode_marked(lines: list[dict], values: list[bytes] | None) -> None:
    """Turn the marked fields of parsed lines into what native readers see, in place.

    A base64 key becomes ``bytes``. Without raw values (``values`` None) a ``venc`` value becomes
    ``bytes`` (``None`` for a null value); raw values stay the JSON bytes the line holds, the line's
    ``venc`` field says how to read them (:func:`kafka_value`).
    """
    for line in lines:
        if line.get("kenc") == "base64" and type(line["key"]) is str:
            line["key"] = binascii.a2b_base64(line["key"])
        if values is None and "venc" in line and type(line["value"]) is not bytes:
            enc, value = line["venc"], line["value"]
            if enc == "null":
                line["value"] = None
            elif enc == "text":
                line["value"] = value.encode("utf-8")
            elif enc == "base64":
                line["value"] = binascii.a2b_base64(value)


def kafka_record_line(offset: int, timestamp: int, key: bytes | None,
                      headers: Sequence[tuple[str, bytes | None]] | None, value: bytes | None) -> dict:
    """The parsed line a native reader gets for a Kafka client's record stored at ``offset``:
    what :func:`encode_kafka` stores, decoded as :func:`decode_marked` decodes it."""
    key_json, extras, value_json = encode_kafka(key, headers, value)
    line = _loads(b'{"offset":%d,"timestamp":%d,"key":%b%b,"value":%b}'
                  % (offset, timestamp, key_json, extras, value_json))
    decode_marked([line], None)
    return line
