"""Kafka's wire primitives and a schema interpreter: messages as dicts, encoded and decoded per
API version (the protocol guide's "Protocol Primitive Types").

Big-endian fixed-width integers; classic strings (int16 length) and bytes/arrays (int32 length),
-1 for null; in *flexible* versions compact forms (unsigned varint of length + 1, 0 for null) and a
tagged-field section at the end of every struct. The zig-zag varints of record batches
(:mod:`logbroker.kafka.batch`) are read and written here too (:func:`read_varint`,
:func:`write_varint`): one codec for both.

A schema is a list of :class:`Field`. Decoding returns a dict of field name to value (nested
structs are dicts, arrays lists); fields absent in a version are left out. Encoding takes such a
dict and fills a missing field with its default (0, false, empty string, empty array, or null where
the version allows it). Malformed input raises :class:`DecodeError` with the position.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field as dc_field
from typing import Any

__all__ = ["Field", "DecodeError", "Reader", "encode", "decode", "write_uvarint", "read_uvarint", "read_varint",
           "write_varint"]


class DecodeError(ValueError):
    """Malformed bytes: a length past the end, a negative count, a varint too long."""


_INT = {"i8": struct.Struct(">b"), "i16": struct.Struct(">h"), "i32": struct.Struct(">i"),
        "i64": struct.Struct(">q"), "u16": struct.Struct(">H"), "u32": struct.Struct(">I"),
        "f64": struct.Struct(">d")}


def _versions(spec: str) -> tuple[int, int]:
    if spec.endswith("+"):
        return int(spec[:-1]), 1 << 15
    lo, _, hi = spec.partition("-")
    return int(lo), int(hi or lo)


@dataclass(frozen=True)
class Field:
    """One field: ``type`` is i8/i16/i32/i64/bool/str/bytes/records/uuid, ``[T]`` for an array of
    a primitive, or ``[]`` for an array of structs (``fields``); ``versions`` and ``nullable`` are
    Kafka's version ranges ("0+", "3-5"); ``tag`` makes it a tagged field (flexible versions)."""

    name: str
    type: str
    versions: str = "0+"
    nullable: str | None = None
    fields: tuple["Field", ...] = ()
    default: Any = None
    tag: int | None = None
    _range: tuple[int, int] = dc_field(init=False, repr=False, compare=False)
    _null: tuple[int, int] = dc_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_range", _versions(self.versions))
        object.__setattr__(self, "_null", _versions(self.nullable) if self.nullable else (1, 0))

    def present(self, v: int) -> bool:
        return self._range[0] <= v <= self._range[1]

    def is_nullable(self, v: int) -> bool:
        return self._null[0] <= v <= self._null[1]


def F(name: str, type: str, versions: str = "0+", nullable: str | None = None, fields: tuple = (),
      default: Any = None, tag: int | None = None) -> Field:
    return Field(name, type, versions, nullable, tuple(fields), default, tag)


# -- varints -------------------------------------------------------------------------------------

def write_uvarint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError(f"varint runs past the end at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError(f"varint longer than 10 bytes at byte {pos}")


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (the record batch's varint and varlong, signed) and the position after it."""
    n, pos = read_uvarint(buf, pos)
    return (n >> 1) ^ -(n & 1), pos


def write_varint(out: bytearray, n: int) -> None:
    """Append ``n`` (signed, 64 bits at most) as a zig-zag varint."""
    write_uvarint(out, (n << 1) ^ (n >> 63))


# -- decoding ------------------------------------------------------------------------------------

class Reader:
    """A position in a buffer; every read checks the bounds."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise DecodeError(f"{n} bytes wanted at byte {self.pos}, {len(self.buf) - self.pos} left")
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def int(self, kind: str) -> int:
        s = _INT[kind]
        return s.unpack(self.take(s.size))[0]

    def uvarint(self) -> int:
        value, self.pos = read_uvarint(self.buf, self.pos)
        return value

    def length(self, flexible: bool, wide: bool) -> int:
        """A length or count: -1 for null."""
        if flexible:
            return self.uvarint() - 1
        return self.int("i32" if wide else "i16")

    def string(self, flexible: bool) -> str | None:
        n = self.length(flexible, False)
        if n < 0:
            return None
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"string is not UTF-8 before byte {self.pos}") from None

    def bytes(self, flexible: bool) -> bytes | None:
        n = self.length(flexible, True)
        return None if n < 0 else self.take(n)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def decode(schema: tuple[Field, ...], r: Reader, version: int, flexible: bool) -> dict:
    out: dict[str, Any] = {}
    for name, read in _decode_plan(schema, version, flexible):
        out[name] = read(r)
    if flexible:
        r.skip_tags()
    return out


# A schema is interpreted once per (schema, version, flexible): its plan lists the fields present in
# that version, each with a function made for its type and nullability, so that decoding and
# encoding a message walk a flat list instead of asking every field about the version each time.
_DECODE_PLANS: dict[tuple[int, int, bool], tuple[tuple[Field, ...], list]] = {}
_ENCODE_PLANS: dict[tuple[int, int, bool], tuple[tuple[Field, ...], list]] = {}


def _decode_plan(schema: tuple[Field, ...], version: int, flexible: bool) -> list:
    """[(name, read)] of the fields of ``schema`` present in ``version`` (tagged fields left out)."""
    key = (id(schema), version, flexible)
    cached = _DECODE_PLANS.get(key)
    if cached is None:
        plan = [(f.name, _reader(f, version, flexible)) for f in schema if f.tag is None and f.present(version)]
        cached = _DECODE_PLANS[key] = (schema, plan)  # the schema kept: its id stays its own
    return cached[1]


def _reader(f: Field, version: int, flexible: bool):
    """A function of a Reader that reads one value of field ``f`` in ``version``."""
    t = f.type
    if t in _INT:
        unpack, size = _INT[t].unpack_from, _INT[t].size

        def read_int(r: Reader) -> int:
            pos = r.pos
            if pos + size > len(r.buf):
                r.take(size)  # raises the DecodeError naming the position
            r.pos = pos + size
            return unpack(r.buf, pos)[0]
        return read_int
    if t == "bool":
        return lambda r: r.take(1) != b"\x00"
    if t == "uuid":
        return lambda r: r.take(16)
    if t == "str":
        def read(r: Reader) -> str | None:
            return r.string(flexible)
    elif t in ("bytes", "records"):
        def read(r: Reader) -> bytes | None:
            return r.bytes(flexible)
    elif t.startswith("["):
        if t == "[]":
            def element(r: Reader) -> Any:
                return decode(f.fields, r, version, flexible)
        else:
            element = _reader(Field(f.name, t[1:-1]), version, flexible)

        def read(r: Reader) -> list | None:
            n = r.length(flexible, True)
            if n < 0:
                return None
            if n > len(r.buf) - r.pos:  # every element takes at least one byte
                raise DecodeError(f"array of {n} elements at byte {r.pos} is longer than the message")
            return [element(r) for _ in range(n)]
    else:
        raise AssertionError(f"unknown field type {t}")
    if f.is_nullable(version):
        return read
    name = f.name

    def read_not_null(r: Reader) -> Any:
        at = r.pos
        value = read(r)
        if value is None:
            raise DecodeError(f"{name} is null at byte {at} but cannot be in version {version}")
        return value
    return read_not_null


# -- encoding ------------------------------------------------------------------------------------

def encode(schema: tuple[Field, ...], value: dict, version: int, flexible: bool, out: bytearray) -> None:
    get = value.get
    for name, default, write in _encode_plan(schema, version, flexible):
        write(get(name, default), out)
    if flexible:
        out.append(0)  # no tagged fields


def _encode_plan(schema: tuple[Field, ...], version: int, flexible: bool) -> list:
    """[(name, default, write)] of the fields of ``schema`` present in ``version``."""
    key = (id(schema), version, flexible)
    cached = _ENCODE_PLANS.get(key)
    if cached is None:
        plan = [(f.name, f.default, _writer(f, version, flexible)) for f in schema
                if f.tag is None and f.present(version)]
        cached = _ENCODE_PLANS[key] = (schema, plan)
    return cached[1]


def _write_length(out: bytearray, n: int, flexible: bool, wide: bool) -> None:
    if flexible:
        write_uvarint(out, n + 1)
    else:
        out += _INT["i32" if wide else "i16"].pack(n)


def _writer(f: Field, version: int, flexible: bool):
    """A function ``write(value, out)`` that appends one value of field ``f`` in ``version``; a null
    where the version allows none is written as the type's empty value."""
    t = f.type
    nullable = f.is_nullable(version)
    if t in _INT:
        pack = _INT[t].pack

        def write_int(v: Any, out: bytearray) -> None:
            out += pack(v or 0)
        return write_int
    if t == "bool":
        return lambda v, out: out.append(1 if v else 0)
    if t == "uuid":
        def write_uuid(v: Any, out: bytearray) -> None:
            out += v or bytes(16)
        return write_uuid
    if t == "str":
        def write_str(v: Any, out: bytearray) -> None:
            if v is None and not nullable:
                v = ""
            if v is None:
                _write_length(out, -1, flexible, False)
            else:
                data = v.encode("utf-8")
                _write_length(out, len(data), flexible, False)
                out += data
        return write_str
    if t in ("bytes", "records"):
        def write_bytes(v: Any, out: bytearray) -> None:
            if v is None and not nullable:
                v = b""
            if v is None:
                _write_length(out, -1, flexible, True)
            else:
                _write_length(out, len(v), flexible, True)
                out += v
        return write_bytes
    if t.startswith("["):
        if t == "[]":
            def element(item: Any, out: bytearray) -> None:
                encode(f.fields, item, version, flexible, out)
        else:
            element = _writer(Field(f.name, t[1:-1]), version, flexible)

        def write_array(v: Any, out: bytearray) -> None:
            if v is None and not nullable:
                v = []
            if v is None:
                _write_length(out, -1, flexible, True)
                return
            _write_length(out, len(v), flexible, True)
            for item in v:
                element(item, out)
        return write_array
    raise AssertionError(f"unknown field type {t}")
