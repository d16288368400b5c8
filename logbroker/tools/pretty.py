"""Human output for records: the tutorial's order block, and a key/value block for anything else.

Used by ``logbroker consume --format pretty`` and the demo. Pure functions from a record to text.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from ..storage.consumer_record import Record

__all__ = ["format_pretty", "format_envelope", "format_value"]

_ORDER_FIELDS = ("txid", "item", "name", "email", "purchase_time", "address")


def _is_order(value: Any) -> bool:
    return isinstance(value, dict) and all(f in value for f in _ORDER_FIELDS)


def format_pretty(record: Record, number: int) -> str:
    """The tutorial's block for an order; a readable key/value block for other records."""
    v = record.value
    where = f"partition {record.partition}, offset {record.offset}"
    if _is_order(v):
        lines = [
            f"📦 Order #{number}",
            f"   🆔 Transaction ID: {v['txid']}",
            f"   🛍️  Product: {v['item']}" + (f" x{v['quantity']}" if "quantity" in v else "")
            + (f" (${v['price']:.2f})" if isinstance(v.get("price"), (int, float)) else ""),
            f"   👤 Customer: {v['name']}",
            f"   📧 Email: {v['email']}",
            f"   🕐 Purchase Time: {v['purchase_time']}",
            f"   🏠 Address: {v['address']}",
            f"   📍 Message ID: {record.topic}-{record.partition}@{record.offset} ({where})",
        ]
        return "\n".join(lines) + "\n"
    key = "no key" if record.key is None else f"key {record.key}"
    lines = [f"📨 Record #{number} ({record.topic}, {where}, {key})"]
    if isinstance(v, dict) and v:
        width = max(len(str(k)) for k in v)
        for k, item in v.items():
            shown = item if isinstance(item, str) else orjson.dumps(item).decode()
            lines.append(f"   {str(k).ljust(width)} : {shown}")
    else:
        lines.append(f"   value: {format_value(v).decode()}")
    for k, item in (record.headers or {}).items():
        lines.append(f"   header {k}: {item}")
    return "\n".join(lines) + "\n"


def format_value(value: Any) -> bytes:
    """A value as one JSON line. Bytes (a value a Kafka client sent that is not canonical JSON) are
    shown losslessly as ``{"$base64": "<the bytes in base64>"}``."""
    return orjson.dumps(value, default=_bytes_as_json)


def format_envelope(record: Record) -> bytes:
    """Kafka's envelope as one JSON object: topic, partition, offset, timestamp, key, headers, value.
    Bytes keys, values and header values are shown as :func:`format_value` shows bytes."""
    return orjson.dumps(record.to_dict(), default=_bytes_as_json)


def _bytes_as_json(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$base64": binascii.b2a_base64(obj, newline=False).decode("ascii")}
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
