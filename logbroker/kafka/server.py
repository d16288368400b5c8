"""``logbroker serve``: Kafka's wire protocol over a data directory, for any Kafka client.

One asyncio loop serves every connection. Per connection, requests are answered in order (Kafka's
rule; clients pipeline and match responses by order and correlation id) and handled one at a
time, except Produce: a connection's pipelined ProduceRequests are read ahead and handled while
earlier ones wait for their fdatasync, so that they join one group commit
(:meth:`~logbroker.kafka.storage.Storage.append_soon`); any other request waits until every
produce before it is answered. A frame is an int32 length and that many bytes: request header (api key, version,
correlation id, client id; v2 adds tagged fields) and body.

Hostile input never reaches beyond its own connection:

- a length below 8 or above ``socket.request.max.bytes`` (100 MiB), a truncated or malformed
  request, an API or version outside the advertised table (except ApiVersions, answered with
  UNSUPPORTED_VERSION in its v0 form), or a frame not completed within ``FRAME_TIMEOUT_S`` of its
  first byte closes that connection;
- a connection idle for ``connections.max.idle.ms`` (10 min) is closed;
- a connection that would leave the storage fewer descriptors than its budget
  (:mod:`logbroker.storage.handles`) under the process's limit (``ulimit -n``) is closed at once,
  with one warning per run of refusals: clients already connected keep being served rather than
  every file open failing with ``Too many open files``. Connections are accepted one at a time
  for that (:meth:`KafkaServer._accept_loop`);
- memory per connection is bounded by the frames of its pipelined produce requests (at most 128,
  and reading stops once they hold 100 MiB) or one other request, and the responses waiting to be
  written; a client that stops reading stalls only itself;
- a handler failing unexpectedly answers UNKNOWN_SERVER_ERROR where the API has a top-level error
  code, else closes the connection, and is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import struct
from collections import deque
from typing import Any, Callable

from ..errors import LogBrokerError
from ..storage.handles import OPEN_FILES, raise_descriptor_limit
from .coordinator import Coordinator
from .errors import ErrorCode as E
from .group_api import GroupHandlers
from .handlers import DataHandlers, ServerConfig
from .presence import GroupPresence
from .schemas import API_VERSIONS, by_key
from .storage import Storage
from .wire import DecodeError, Reader, decode, encode

__all__ = ["KafkaServer", "ServerConfig", "MAX_REQUEST_BYTES", "Deadline"]

log = logging.getLogger("logbroker.serve")

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
IDLE_TIMEOUT_S = 600.0  # Kafka's connections.max.idle.ms
FRAME_TIMEOUT_S = 30.0
_IDLE = "idle"
_PRODUCE = b"\x00\x00"  # a request header's API key: Produce
#: produce requests of one connection handled at once, at most: all that arrived while the loop was held by a
#: group commit's fdatasync join the next one (librdkafka keeps many in flight; with 16, a backlog of 40
#: took three fdatasyncs, each request waiting for the one before it)
_PIPELINED = 128
_LEN = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")
API_VERSIONS_KEY = 18
FETCH_KEY = 1
#: descriptors kept free beyond the storage's budget: topic directories pinned as topics are first
#: used, the request log, a reader opened between two budget checks
_SPARE_DESCRIPTORS = 16
_BACKLOG = 100  # asyncio's default
_ACCEPT_RETRY_S = 0.1


def open_descriptors() -> int | None:
    """How many descriptors this process has open (Linux's /proc), or None where it cannot tell."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listing it
    except OSError:
        return None


class Connection:
    """One client connection: its readers (a cursor per partition it fetches) and client id."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.client_id: str | None = None
        self._readers: dict[tuple[str, int], Any] = {}
        #: (version, bytes after the header, decoded request) of the last Fetch: a consumer at the end
        #: of its partitions sends the same one every long poll, and the fetch handler never changes
        #: a request, so it is decoded once.
        self.last_fetch: tuple[int, bytes, dict] | None = None
        #: (version, response, its encoding after the correlation id) of the last Fetch answered with
        #: no records: an idle long poll gets the same answer every time, so it is encoded once.
        self.last_empty_fetch: tuple[int, dict, bytes] | None = None

    def reader(self, storage: Storage, topic: str, partition: int):
        key = (topic, partition)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = storage.topic(topic).reader(partition)
        return reader

    def drop_reader(self, topic: str, partition: int) -> None:
        reader = self._readers.pop((topic, partition), None)
        if reader is not None:
            reader.close()

    def drop_topic(self, topic: str) -> None:
        for t, p in [k for k in self._readers if k[0] == topic]:
            self.drop_reader(t, p)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


class Deadline:
    """One timer per connection for both of its read timeouts (idle between requests, a frame not
    completed), instead of a timer and a task per read: :meth:`set` moves the deadline by storing a
    number, and the timer, when it fires before the deadline, re-arms itself there. While a request
    is handled the deadline is cleared (a long poll or a rebalance may wait long)."""

    __slots__ = ("_loop", "_expired", "at", "reason", "_handle", "_armed_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[str], None]) -> None:
        self._loop = loop
        self._expired = expired  # called with the reason once the deadline passes
        self.at = float("inf")
        self.reason = ""
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")

    def set(self, seconds: float, reason: str) -> None:
        self.at, self.reason = self._loop.time() + seconds, reason
        if self.at < self._armed_at:
            self._arm()

    def clear(self) -> None:
        self.at = float("inf")

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        self.cancel()
        self._armed_at = self.at
        self._handle = self._loop.call_at(self.at, self._fire)

    def _fire(self) -> None:
        self._handle, self._armed_at = None, float("inf")
        if self.at == float("inf"):
            return
        if self._loop.time() >= self.at:
            self._expired(self.reason)
        else:
            self._arm()


class KafkaServer:
    """Serve ``data_dir`` on ``config.host``:``config.port`` (0 = any free port; :attr:`port` then
    holds the one chosen). ``request_log``, when given, is called with (client id, api key,
    version) for every request received, supported or not."""

    def __init__(self, data_dir: str | None, config: ServerConfig | None = None,
                 request_log: Callable[[str | None, int, int], None] | None = None) -> None:
        self.config = config or ServerConfig()
        self.storage = Storage(data_dir)
        self.data_dir = self.storage.data_dir
        self.presence = GroupPresence(self.storage)
        self.coordinator = Coordinator(self.config.initial_rebalance_delay_ms, self.presence.claim,
                                       self.presence.release)
        self.data = DataHandlers(self.storage, self.config)
        self.groups = GroupHandlers(self.storage, self.config, self.coordinator)
        self.request_log = request_log
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()
        self._refusing = False  # a connection was refused for want of descriptors, none accepted since
        self._listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task] = []
        self._handlers = {
            0: self.data.produce, 1: self.data.fetch, 2: self.data.list_offsets, 3: self.data.metadata,
            8: self.groups.offset_commit, 9: self.groups.offset_fetch, 10: self.groups.find_coordinator,
            11: self.groups.join_group, 12: self.groups.heartbeat, 13: self.groups.leave_group,
            14: self.groups.sync_group, 18: self._api_versions, 19: self.data.create_topics,
            20: self.data.delete_topics, 22: self.data.init_producer_id, 32: self.data.describe_configs,
            15: self.groups.describe_groups, 16: self.groups.list_groups, 37: self.data.create_partitions,
            42: self.groups.delete_groups, 44: self.data.incremental_alter_configs,
        }

    @property
    def port(self) -> int:
        return self.config.port

    async def start(self) -> None:
        # Bound (the host resolved, SO_REUSEADDR) by asyncio, but accepted by :meth:`_accept_loop`:
        # one connection at a time, each checked for descriptors before the next is taken (asyncio's
        # own loop accepts a whole backlog at once, taking the storage's descriptors with it).
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port,
                                                  limit=1 << 16, reuse_address=True, start_serving=False)
        self.config.port = self._server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        for bound in self._server.sockets:
            listener = socket.socket(fileno=os.dup(bound.fileno()))
            listener.setblocking(False)
            listener.listen(_BACKLOG)
            self._listeners.append(listener)
            self._acceptors.append(loop.create_task(self._accept_loop(listener)))
        self.coordinator.start()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and the like: the backlog waits, the clients retry
                if not self._refusing:
                    self._refusing = True
                    log.warning("cannot accept a connection: %s; trying again", exc)
                await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            if not self._room_for_a_connection(peer):
                sock.close()
                continue
            try:
                reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
            except OSError as exc:
                log.warning("%s: connection failed at once: %s", peer, exc)
                sock.close()
                continue
            loop.create_task(self._serve(reader, writer))

    async def close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.cancel()
        for listener in self._listeners:
            listener.close()
        if self._server is not None:
            self._server.close()
        self.coordinator.stop()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self.presence.close()
        self.storage.close()

    async def run(self, on_ready: Callable[["KafkaServer"], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then close every connection and return."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.close()

    # -- one connection ------------------------------------------------------------------------

    def _room_for_a_connection(self, peer: Any) -> bool:
        """Whether the descriptor limit leaves room for one more connection beside the storage's
        budget (what it holds now plus what it may still open); warns once per run of refusals."""
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        reserved = max(OPEN_FILES.budget - OPEN_FILES.weight, 0) + _SPARE_DESCRIPTORS
        if limit == resource.RLIM_INFINITY or len(self._conns) + OPEN_FILES.weight + reserved + 64 < limit // 2:
            used = None  # far from the limit: /proc is not listed for each connection
        else:
            used = open_descriptors()
        if used is None or used + 1 + reserved <= limit:  # + 1: the connection's own descriptor
            self._refusing = False
            return True
        if not self._refusing:
            self._refusing = True
            log.warning("%s: refusing connections beyond %d open descriptors of the limit of %d (ulimit -n): "
                        "the rest is kept for the partitions' files; raise the limit to serve more clients",
                        peer, limit - reserved, limit)
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        conn = Connection(writer.get_extra_info("peername"))

        def expired(reason: str) -> None:
            if reason == _IDLE:
                log.info("%s: closed after %.0f s idle", conn.peer, IDLE_TIMEOUT_S)
            else:
                log.warning("%s: %s; closing", conn.peer, reason)
            task.cancel()
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop, expired)
        # Produce requests read ahead while earlier ones wait for their group commit, answered in
        # order by one task; at most _PIPELINED of them, and MAX_REQUEST_BYTES of their frames.
        answering: deque[tuple[asyncio.Task, int]] = deque()
        room = asyncio.Event()
        answerer: asyncio.Task | None = None
        held = 0

        async def answer_in_order() -> None:
            nonlocal held
            try:
                while answering:
                    handling, size = answering[0]
                    response = await handling
                    answering.popleft()
                    held -= size
                    room.set()
                    if response is False:
                        task.cancel()
                        return
                    if response is not None:
                        writer.write(_LEN.pack(len(response)) + response)
                        await writer.drain()
            except ConnectionError:
                task.cancel()

        try:
            while True:
                deadline.set(IDLE_TIMEOUT_S, _IDLE)
                head = await reader.readexactly(4)
                (size,) = _LEN.unpack(head)
                if size < 8 or size > MAX_REQUEST_BYTES:
                    log.warning("%s: request of %d bytes refused (allowed: 8 to %d); closing", conn.peer, size,
                                MAX_REQUEST_BYTES)
                    return
                deadline.set(FRAME_TIMEOUT_S, f"request of {size} bytes not received within {FRAME_TIMEOUT_S:.0f} s")
                frame = await reader.readexactly(size)
                deadline.clear()
                if frame[:2] == _PRODUCE:
                    answering.append((loop.create_task(self._handle(frame, conn)), size))
                    held += size
                    if answerer is None or answerer.done():
                        answerer = loop.create_task(answer_in_order())
                    while len(answering) >= _PIPELINED or held >= MAX_REQUEST_BYTES:
                        room.clear()
                        await room.wait()
                    continue
                if answerer is not None and not answerer.done():
                    await answerer  # any other request is handled once every produce before it is answered
                response = await self._handle(frame, conn)
                if response is None:
                    continue
                if response is False:
                    return
                writer.write(_LEN.pack(len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            deadline.cancel()
            if answerer is not None:
                answerer.cancel()
            for handling, _ in answering:
                handling.cancel()
            conn.close()
            self._conns.discard(task)
            writer.close()

    async def _handle(self, frame: bytes, conn: Connection) -> bytes | None | bool:
        """The response bytes (without length), None for no response (acks=0), False to close."""
        api_key, version, correlation = _HEAD.unpack_from(frame)
        r = Reader(frame, 8)
        try:
            client_id = r.string(False)
        except DecodeError as exc:
            log.warning("%s: malformed request header (%s); closing", conn.peer, exc)
            return False
        conn.client_id = client_id
        if self.request_log is not None:
            self.request_log(client_id, api_key, version)
        api = by_key.get(api_key)
        if api is None or not api.min_version <= version <= api.max_version:
            if api_key == API_VERSIONS_KEY:
                return self._unsupported_api_versions(correlation)
            log.warning("%s (%s): API %d version %d is not supported; closing", conn.peer, client_id, api_key,
                        version)
            return False
        flexible = api.flexible(version)
        repeated = conn.last_fetch
        if api_key == FETCH_KEY and repeated is not None and repeated[0] == version and repeated[1] == frame[r.pos:]:
            req = repeated[2]  # the fetch this connection sent last, again: an idle long poll's usual case
        else:
            body = frame[r.pos:]
            try:
                if flexible:
                    r.skip_tags()
                req = decode(api.request, r, version, flexible)
            except DecodeError as exc:
                log.warning("%s (%s): malformed %s v%d request (%s); closing", conn.peer, client_id, api.name, version,
                            exc)
                return False
            if api_key == FETCH_KEY:
                conn.last_fetch = (version, body, req)
        try:
            result = self._handlers[api_key](req, version, conn)
            if asyncio.iscoroutine(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not the client's fault: answer if the API allows it
            log.exception("%s (%s): %s v%d failed: %s", conn.peer, client_id, api.name, version, exc)
            if not isinstance(exc, LogBrokerError) and not any(f.name == "ErrorCode" for f in api.response):
                return False
            result = {"ErrorCode": E.UNKNOWN_SERVER_ERROR}
        if api_key == 0 and req["Acks"] == 0:
            return None
        if api_key == FETCH_KEY and not flexible:
            return _CORRELATION.pack(correlation) + self._fetch_answer(result, version, conn)
        out = bytearray(_CORRELATION.pack(correlation))
        if flexible and api_key != API_VERSIONS_KEY:
            out.append(0)  # response header v1: no tagged fields
        encode(api.response, result, version, flexible, out)
        return bytes(out)

    @staticmethod
    def _fetch_answer(result: dict, version: int, conn: Connection) -> bytes:
        """A Fetch response's bytes after the correlation id; one without records is encoded once
        per connection while it stays the same (an idle long poll's answer, every ``MaxWaitMs``)."""
        cached = conn.last_empty_fetch
        if cached is not None and cached[0] == version and cached[1] == result:
            return cached[2]
        body = _fetch_response_bytes(result, version)
        if body is None:
            out = bytearray()
            encode(by_key[FETCH_KEY].response, result, version, False, out)
            body = bytes(out)
        if not any(p["Records"] for t in result.get("Responses", ()) for p in t["Partitions"]):
            conn.last_empty_fetch = (version, result, body)
        return body

    def _api_versions(self, req: dict, version: int, conn: Connection) -> dict:
        return {"ErrorCode": 0, "ApiKeys": [{"ApiKey": k, "MinVersion": lo, "MaxVersion": hi}
                                            for k, lo, hi in API_VERSIONS]}

    def _unsupported_api_versions(self, correlation: int) -> bytes:
        """ApiVersions at a version we do not know: error 35 in the v0 form, header v0 (KIP-511)."""
        api = by_key[API_VERSIONS_KEY]
        out = bytearray(struct.pack(">i", correlation))
        entry = next(e for e in API_VERSIONS if e[0] == API_VERSIONS_KEY)
        encode(api.response, {"ErrorCode": E.UNSUPPORTED_VERSION,
                              "ApiKeys": [{"ApiKey": entry[0], "MinVersion": entry[1], "MaxVersion": entry[2]}]},
               0, False, out)
        return bytes(out)


_I16, _I32 = struct.Struct(">h"), struct.Struct(">i")
_FETCH_HEAD_V7 = struct.Struct(">ihi")  # ThrottleTimeMs, ErrorCode, SessionId
#: a Fetch response's partition up to its records' length, per version: PartitionIndex, ErrorCode,
#: HighWatermark, LastStableOffset, LogStartOffset (5+), AbortedTransactions (null: -1),
#: PreferredReadReplica (11+), the records' length (-1: null)
_FETCH_PARTITION = {4: struct.Struct(">ihqqii"), 5: struct.Struct(">ihqqqii"), 11: struct.Struct(">ihqqqiii")}


def _fetch_response_bytes(result: dict, version: int) -> bytes | None:
    """A Fetch response (v4 to v11, none of them flexible) written field by field: the bytes the
    schema's encoder writes (a woken long poll's answer is on the end-to-end latency's path, and
    the encoder walks the schema for every field). None for a response with anything else than the
    fetch handler's answers hold (aborted transactions, missing fields): the encoder writes those."""
    part = _FETCH_PARTITION[11 if version >= 11 else 5 if version >= 5 else 4]
    out = [_FETCH_HEAD_V7.pack(result.get("ThrottleTimeMs") or 0, result.get("ErrorCode") or 0,
                               result.get("SessionId") or 0) if version >= 7
           else _I32.pack(result.get("ThrottleTimeMs") or 0)]
    try:
        responses = result["Responses"]
        out.append(_I32.pack(len(responses)))
        for t in responses:
            name = t["Topic"].encode("utf-8")
            parts = t["Partitions"]
            out.append(_I16.pack(len(name)) + name + _I32.pack(len(parts)))
            for p in parts:
                if p["AbortedTransactions"] is not None:
                    return None
                records = p["Records"]
                size = -1 if records is None else len(records)
                if version >= 11:
                    head = part.pack(p["PartitionIndex"], p["ErrorCode"], p["HighWatermark"], p["LastStableOffset"],
                                     p["LogStartOffset"], -1, p["PreferredReadReplica"], size)
                elif version >= 5:
                    head = part.pack(p["PartitionIndex"], p["ErrorCode"], p["HighWatermark"], p["LastStableOffset"],
                                     p["LogStartOffset"], -1, size)
                else:
                    head = part.pack(p["PartitionIndex"], p["ErrorCode"], p["HighWatermark"], p["LastStableOffset"],
                                     -1, size)
                out.append(head)
                if records:
                    out.append(records)
    except (KeyError, TypeError, AttributeError, struct.error):
        return None
    return b"".join(out)


def serve(data_dir: str | None, config: ServerConfig, on_ready: Callable[[KafkaServer], None] | None = None,
          request_log: str | None = None) -> None:
    """Run a server until SIGINT/SIGTERM (what ``logbroker serve`` calls). With ``request_log``, append
    one line per request to that file: the client id, the API key and the version."""
    log_file = open(request_log, "a", buffering=1) if request_log else None

    def note(client_id: str | None, api_key: int, version: int) -> None:
        log_file.write(f"{client_id}\t{api_key}\t{version}\n")

    raise_descriptor_limit()  # each client holds a descriptor: a shell's soft 1,024 is too few
    server = KafkaServer(data_dir, config, note if log_file else None)
    try:
        asyncio.run(server.run(on_ready))
    finally:
        if log_file is not None:
            log_file.close()
