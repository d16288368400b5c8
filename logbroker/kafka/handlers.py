"""The data and admin APIs over the storage layer: Metadata, Produce, Fetch, ListOffsets,
CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
InitProducerId (one node, id 0, leader of everything).

Each handler takes the decoded request (a dict, :mod:`logbroker.kafka.schemas`) and returns the
response dict. Per-partition problems become Kafka error codes in the response; nothing a client
sends makes a handler raise, except a malformed message (the server closes that connection).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from itertools import repeat
from operator import contains, itemgetter
from typing import Any

from ..storage.config import DEFAULT_PARTITIONS, TopicConfig
from ..errors import (CorruptionError, FencedError, InvalidConfigError, InvalidNameError, InvalidRecordError,
                      LogBrokerError, OffsetOutOfRangeError, RecordTooLargeError, StorageError, TopicExistsError,
                      UnknownPartitionError, UnknownTopicError)
from ..storage.record import PendingRecord
from ..storage.record_bytes import kafka_headers, kafka_key, kafka_value
from .batch import BatchError, decode_batches, encode_batch, encode_plain_batch
from .errors import ErrorCode as E
from .idempotence import Duplicate, ProducerStates
from .storage import WATCH_INTERVAL_S, Storage

__all__ = ["DataHandlers", "ServerConfig"]

log = logging.getLogger("logbroker.serve")

NODE_ID = 0
CLUSTER_ID = "logbroker"
#: Kafka's ACL operation bits (3 READ .. 12 IDEMPOTENT_WRITE) a client may ask Metadata for.
_TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
_CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))
_MAX_WAIT_MS = 30_000  # a fetch's long poll is capped (clients ask for 500 ms; a closed client's wait ends)
#: a long poll waiting at least this long parks on the watcher's recent read of its partitions' ends
_WATCHED_WAIT_MS = 2000 * WATCH_INTERVAL_S
_FIRST_READ, _MAX_READ = 500, 4000  # records per read of a fetch; each read is one Kafka batch of the response
_get_offset, _get_timestamp, _get_key = itemgetter("offset"), itemgetter("timestamp"), itemgetter("key")
_MARKED = ("venc", "kenc", "headers")  # fields of a line that a Kafka client gets other than as they are stored


class ServerConfig:
    """What ``logbroker serve``'s options set."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, auto_create_topics: bool = True,
                 num_partitions: int = DEFAULT_PARTITIONS, initial_rebalance_delay_ms: int = 3000) -> None:
        self.host = host
        self.port = port
        self.auto_create_topics = auto_create_topics
        self.num_partitions = num_partitions
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms


def _storage_error(exc: Exception) -> int:
    if isinstance(exc, (UnknownTopicError, UnknownPartitionError)):
        return E.UNKNOWN_TOPIC_OR_PARTITION
    if isinstance(exc, InvalidNameError):
        return E.INVALID_TOPIC_EXCEPTION
    if isinstance(exc, RecordTooLargeError):
        return E.MESSAGE_TOO_LARGE
    if isinstance(exc, InvalidRecordError):
        return E.INVALID_RECORD
    if isinstance(exc, (StorageError, FencedError, CorruptionError)):
        return E.KAFKA_STORAGE_ERROR
    return E.UNKNOWN_SERVER_ERROR


def _encode_read(got: Any) -> tuple[bytes, int]:
    """One read's records (raw) as one Kafka batch, and their size as counted against a fetch's
    byte limits. Plain lines (no ``venc``, ``kenc`` or ``headers``; keys all strings or all null)
    are encoded column by column; any others record by record."""
    lines, values = got.columns()
    n = len(lines)
    # A line head holds crc, offset, timestamp and key, the first line of a stored batch also its
    # batch field: heads with no field beyond those are plain, told by their sizes; otherwise
    # each marked field is looked for.
    extra = sum(map(len, lines)) - 4 * n
    plain = (extra == 0 or extra == sum(map(contains, lines, repeat("batch")))
             or not any(any(map(contains, lines, repeat(mark))) for mark in _MARKED))
    if plain:
        keys = list(map(_get_key, lines))
        if keys.count(None) == n:
            keys = None
        elif None in keys:
            plain = False
        else:
            keys = list(map(str.encode, keys))
    if plain:
        size = 24 * n + sum(map(len, values)) + (0 if keys is None else sum(map(len, keys)))
        first, last = lines[0]["offset"], lines[-1]["offset"]
        # Offsets ascend in a log: as many as there are lines between the first and the last are all of them.
        offsets = range(first, last + 1) if last - first == n - 1 else list(map(_get_offset, lines))
        return encode_plain_batch(offsets, list(map(_get_timestamp, lines)), keys, values), size
    records, size = [], 0
    for d, value_json in zip(lines, values):
        if "venc" in d or "kenc" in d or "headers" in d:
            key, value, headers = kafka_key(d), kafka_value(d, value_json), kafka_headers(d)
            size += sum(len(h) + len(v or b"") for h, v in headers)
        else:  # a plain line: a str or null key, a JSON value sent as its bytes
            key, value, headers = d["key"], value_json, ()
            if key is not None:
                key = key.encode("utf-8")
        records.append((d["offset"], d["timestamp"], key, headers, value))
        size += 24 + len(key or b"") + len(value or b"")
    return encode_batch(records[0][0], records), size


def _without_gc(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with the cyclic garbage collector paused: decoding a produced batch allocates
    tuples by the thousand and no reference cycle, and each allocation past the collector's
    threshold would otherwise traverse them all again (measured: ~2,800 of ~39,000 instructions
    per record of decoding and checking). Nothing awaits inside, so no other task runs paused; the
    collector, when enabled, sees the survivors at its next collection."""
    if not gc.isenabled():
        return fn(*args)
    gc.disable()
    try:
        return fn(*args)
    finally:
        gc.enable()


class DataHandlers:
    def __init__(self, storage: Storage, config: ServerConfig) -> None:
        self.storage = storage
        self.config = config
        self.producers = ProducerStates()

    # -- Metadata ------------------------------------------------------------------------------

    def metadata(self, req: dict, version: int, conn: Any) -> dict:
        wanted = req.get("Topics")
        auto = req.get("AllowAutoTopicCreation", True) and self.config.auto_create_topics
        names = self.storage.list_topics() if wanted is None else [t["Name"] for t in wanted]
        topics = []
        for name in names:
            entry: dict[str, Any] = {"Name": name, "ErrorCode": 0, "IsInternal": False, "Partitions": []}
            try:
                topic = self.storage.ensure_topic(name, self.config.num_partitions) if auto else self.storage.topic(name)
                entry["Partitions"] = [{"ErrorCode": 0, "PartitionIndex": p, "LeaderId": NODE_ID, "LeaderEpoch": 0,
                                        "ReplicaNodes": [NODE_ID], "IsrNodes": [NODE_ID], "OfflineReplicas": []}
                                       for p in range(topic.partitions)]
            except LogBrokerError as exc:
                entry["ErrorCode"] = _storage_error(exc)
            if req.get("IncludeTopicAuthorizedOperations"):
                entry["TopicAuthorizedOperations"] = _TOPIC_OPERATIONS
            topics.append(entry)
        resp = {"Brokers": [{"NodeId": NODE_ID, "Host": self.config.host, "Port": self.config.port, "Rack": None}],
                "ClusterId": CLUSTER_ID, "ControllerId": NODE_ID, "Topics": topics}
        if req.get("IncludeClusterAuthorizedOperations"):
            resp["ClusterAuthorizedOperations"] = _CLUSTER_OPERATIONS
        return resp

    # -- Produce -------------------------------------------------------------------------------

    async def produce(self, req: dict, version: int, conn: Any) -> dict:
        acks = req["Acks"]
        # Every partition's batches are queued for their group commits before any is awaited.
        pending = [(t["Name"], [self._produce_partition(t["Name"], pd["Index"], pd["Records"], acks)
                                for pd in t["PartitionData"]]) for t in req["TopicData"]]
        if sum(len(parts) for _, parts in pending) > 1:
            answered = iter(await asyncio.gather(*(c for _, parts in pending for c in parts)))
            return {"Responses": [{"Name": name, "PartitionResponses": [next(answered) for _ in parts]}
                                  for name, parts in pending]}
        return {"Responses": [{"Name": name, "PartitionResponses": [await c for c in parts]} for name, parts in pending]}

    async def _produce_partition(self, name: str, partition: int, data: bytes | None, acks: int) -> dict:
        out: dict[str, Any] = {"Index": partition, "ErrorCode": 0, "BaseOffset": -1, "LogAppendTimeMs": -1,
                               "LogStartOffset": -1}
        if acks not in (-1, 0, 1):
            out["ErrorCode"] = E.INVALID_REQUIRED_ACKS
            return out
        try:
            topic = (self.storage.ensure_topic(name, self.config.num_partitions) if self.config.auto_create_topics
                     else self.storage.topic(name))
            topic.check_partition(partition)
            batches = _without_gc(decode_batches, data or b"", topic.config.max_message_bytes * 4)
        except BatchError as exc:
            log.warning("produce to %s-%d refused: %s", name, partition, exc)
            out["ErrorCode"], out["ErrorMessage"] = exc.code, str(exc)
            return out
        except LogBrokerError as exc:
            out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
            return out
        base = None
        try:
            for batch in batches:
                idempotent = batch.producer_id >= 0 and batch.base_sequence >= 0
                if idempotent:
                    # An idempotent producer's next batch is checked once the last one is recorded.
                    await self.producers.turn(batch, name, partition)
                try:
                    verdict = self.producers.check(batch, name, partition)
                    if isinstance(verdict, Duplicate):
                        base = verdict if base is None else base
                        continue
                    if verdict is not None:
                        out["ErrorCode"] = verdict
                        out["ErrorMessage"] = f"producer {batch.producer_id}: {verdict.name}"
                        return out
                    records = _without_gc(PendingRecord.from_kafka_records, batch.records)
                    results = await self.storage.append_soon(topic, partition, records)
                    first = results[0].base_offset
                    self.producers.record(batch, name, partition, first)
                finally:
                    if idempotent:
                        self.producers.done(batch, name, partition)
                base = first if base is None else base
        except LogBrokerError as exc:
            log.warning("produce to %s-%d failed: %s", name, partition, exc)
            out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
            return out
        out["BaseOffset"] = base
        return out

    # -- Fetch ---------------------------------------------------------------------------------

    async def fetch(self, req: dict, version: int, conn: Any) -> dict:
        deadline = time.monotonic() + min(max(0, req["MaxWaitMs"]), _MAX_WAIT_MS) / 1000.0
        min_bytes = req["MinBytes"]
        keys = [(t["Topic"], p["Partition"]) for t in req["Topics"] for p in t["Partitions"]]
        self.storage.watch(keys)  # before the first read: an append after it wakes this poll
        # A poll that waits long enough for the watcher's next read may take the watcher's last read
        # of a partition's end for its own (see Storage.watched_high_watermark); once woken, it reads.
        watched = self.storage.watched_high_watermark if req["MaxWaitMs"] >= _WATCHED_WAIT_MS else None
        waiter = responses = None
        try:
            while True:
                waiter = self.storage.next_append()
                responses, total = self._fetch_once(req, conn, watched, responses)
                watched = None
                remaining = deadline - time.monotonic()
                if total >= max(min_bytes, 1) or remaining <= 0 or any(
                        p["ErrorCode"] for t in responses for p in t["Partitions"]):
                    return {"ErrorCode": 0, "SessionId": 0, "Responses": responses}
                if not await self.storage.wait_append(waiter, remaining):
                    # Nothing moved (the watcher would have said): the last answer stands.
                    return {"ErrorCode": 0, "SessionId": 0, "Responses": responses}
        finally:
            if waiter is not None:
                self.storage.drop_waiter(waiter)
            self.storage.unwatch(keys)

    def _fetch_once(self, req: dict, conn: Any, watched: Any = None, before: list | None = None) -> tuple[list, int]:
        """Every partition of the fetch read once. ``before``: this poll's previous answer, when it
        was woken: a partition that answer found at its end is in range (see :meth:`_fetch_partition`)."""
        budget = req.get("MaxBytes", 0x7FFFFFFF)
        responses, total = [], 0
        for i, t in enumerate(req["Topics"]):
            parts = []
            ends = before[i]["Partitions"] if before is not None else None
            for j, p in enumerate(t["Partitions"]):
                offset = p["FetchOffset"]
                part = self._fetch_partition(t["Topic"], p["Partition"], offset,
                                             min(p["PartitionMaxBytes"], budget) if total else p["PartitionMaxBytes"],
                                             conn, watched, ends is not None and ends[j]["HighWatermark"] == offset)
                size = len(part["Records"])
                total += size
                budget -= size
                parts.append(part)
            responses.append({"Topic": t["Topic"], "Partitions": parts})
        return responses, total

    def _fetch_partition(self, name: str, partition: int, offset: int, max_bytes: int, conn: Any,
                         watched: Any = None, was_at_end: bool = False) -> dict:
        """One partition's part of a fetch. ``watched``: a function giving the watcher's recent read of
        a partition's high watermark (or None), which a fetch at that very offset takes for its own.

        ``was_at_end``: this poll, woken by an append, found ``offset`` at the partition's end
        before it parked, so ``offset`` was not below the log start then: the records read now were
        all appended since. Its log start offset is then only information, as for a fetch at the
        end (:meth:`Storage.log_start_offset`), and not read afresh: a woken long poll (the
        end-to-end latency's path) costs no directory listing and checkpoint read. (A delete-records
        of those very records between their append and this read is seen by the consumer's next
        fetch, as if it had come just after this read.)"""
        out = {"PartitionIndex": partition, "ErrorCode": 0, "HighWatermark": -1, "LastStableOffset": -1,
               "LogStartOffset": -1, "AbortedTransactions": None, "PreferredReadReplica": -1, "Records": b""}
        try:
            reader = conn.reader(self.storage, name, partition)
            hw = watched((name, partition)) if watched is not None else None
            if hw != offset:
                hw = reader.high_watermark()
            out["HighWatermark"] = out["LastStableOffset"] = hw
            if offset == hw:  # a consumer at the end: every fetch of an idle long poll
                out["LogStartOffset"] = self.storage.log_start_offset((name, partition), reader)
                return out
            out["LogStartOffset"] = start = (self.storage.log_start_offset((name, partition), reader) if was_at_end
                                             else reader.log_start_offset())
            if not start <= offset <= hw:
                out["ErrorCode"] = E.OFFSET_OUT_OF_RANGE
                return out
            batches: list[bytes] = []
            size = 0
            count = _FIRST_READ
            while size < max_bytes and offset < hw:
                got = reader.read(offset, max_records=count, raw=True)
                if not got:
                    break
                batch, nbytes = _encode_read(got)
                batches.append(batch)
                size += nbytes
                offset = got.next_offset
                # The next read: about what the byte limit leaves, at the sizes seen so far.
                count = max(1, min(_MAX_READ, (max_bytes - size) * len(got) // max(nbytes, 1) + 1))
            out["Records"] = b"".join(batches)
        except OffsetOutOfRangeError as exc:
            out["ErrorCode"] = E.OFFSET_OUT_OF_RANGE
            out["LogStartOffset"] = getattr(exc, "log_start_offset", -1)
        except LogBrokerError as exc:
            out["ErrorCode"] = _storage_error(exc)
            conn.drop_reader(name, partition)
        return out

    # -- ListOffsets ---------------------------------------------------------------------------

    def list_offsets(self, req: dict, version: int, conn: Any) -> dict:
        topics = []
        for t in req["Topics"]:
            parts = []
            for p in t["Partitions"]:
                out = {"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0, "Timestamp": -1, "Offset": -1,
                       "LeaderEpoch": 0}
                try:
                    reader = conn.reader(self.storage, t["Name"], p["PartitionIndex"])
                    ts = p["Timestamp"]
                    if ts == -1:
                        out["Offset"] = reader.high_watermark()
                    elif ts == -2:
                        out["Offset"] = reader.log_start_offset()
                    elif ts >= 0:
                        found = reader.offset_for_timestamp(ts)
                        if found is not None:
                            # The lookup may land below a log start that delete-records moved
                            # inside a segment: the first record kept is the answer then.
                            found = max(found, reader.log_start_offset())
                            [rec] = reader.read(found, max_records=1, raw=True)
                            out["Offset"], out["Timestamp"] = found, rec.timestamp
                    else:
                        out["ErrorCode"] = E.INVALID_REQUEST
                except LogBrokerError as exc:
                    out["ErrorCode"] = _storage_error(exc)
                    conn.drop_reader(t["Name"], p["PartitionIndex"])
                parts.append(out)
            topics.append({"Name": t["Name"], "Partitions": parts})
        return {"Topics": topics}

    # -- InitProducerId ------------------------------------------------------------------------

    def init_producer_id(self, req: dict, version: int, conn: Any) -> dict:
        if req.get("TransactionalId") is not None:
            log.warning("refused a transactional producer (transactional.id %r): transactions are not supported",
                        req["TransactionalId"])
            return {"ErrorCode": E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
        return {"ErrorCode": 0, "ProducerId": self.producers.new_id(), "ProducerEpoch": 0}

    # -- topics and configs --------------------------------------------------------------------

    def create_topics(self, req: dict, version: int, conn: Any) -> dict:
        results = []
        for t in req["Topics"]:
            name = t["Name"]
            out = {"Name": name, "ErrorCode": 0, "ErrorMessage": None}
            partitions = t["NumPartitions"]
            if partitions == -1:
                partitions = self.config.num_partitions
            configs = {c["Name"]: c["Value"] for c in t["Configs"] if c["Value"] is not None}
            try:
                if partitions <= 0:
                    out["ErrorCode"], out["ErrorMessage"] = E.INVALID_PARTITIONS, f"{partitions} partitions"
                elif t["ReplicationFactor"] not in (-1, 1):
                    out["ErrorCode"] = E.INVALID_REPLICATION_FACTOR
                    out["ErrorMessage"] = f"replication factor {t['ReplicationFactor']}: this server has one node"
                elif t["Assignments"]:
                    out["ErrorCode"], out["ErrorMessage"] = E.INVALID_REQUEST, "manual replica assignment"
                elif req.get("ValidateOnly"):
                    from ..storage.config import validate_topic_name
                    validate_topic_name(name)
                    TopicConfig().with_overrides(configs)
                    if name in self.storage.list_topics():
                        raise TopicExistsError(f"topic {name!r} already exists")
                else:
                    self.storage.create_topic(name, partitions, configs)
            except TopicExistsError as exc:
                out["ErrorCode"], out["ErrorMessage"] = E.TOPIC_ALREADY_EXISTS, str(exc)
            except InvalidConfigError as exc:
                out["ErrorCode"], out["ErrorMessage"] = E.INVALID_CONFIG, str(exc)
            except LogBrokerError as exc:
                out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
            results.append(out)
        return {"Topics": results}

    def delete_topics(self, req: dict, version: int, conn: Any) -> dict:
        results = []
        for name in req["TopicNames"]:
            code = 0
            try:
                conn.drop_topic(name)
                self.storage.delete_topic(name)
            except LogBrokerError as exc:
                code = _storage_error(exc)
            results.append({"Name": name, "ErrorCode": code})
        return {"Responses": results}

    def describe_configs(self, req: dict, version: int, conn: Any) -> dict:
        results = []
        for res in req["Resources"]:
            out = {"ErrorCode": 0, "ErrorMessage": None, "ResourceType": res["ResourceType"],
                   "ResourceName": res["ResourceName"], "Configs": []}
            keys = res.get("ConfigurationKeys")
            try:
                if res["ResourceType"] == 2:
                    configs = self._topic_configs(res["ResourceName"])
                elif res["ResourceType"] == 4:
                    configs = self._broker_configs()
                else:
                    out["ErrorCode"], out["ErrorMessage"] = E.INVALID_REQUEST, "only topic and broker configs"
                    configs = []
            except LogBrokerError as exc:
                out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
                configs = []
            out["Configs"] = [c for c in configs if keys is None or c["Name"] in keys]
            results.append(out)
        return {"Results": results}

    def create_partitions(self, req: dict, version: int, conn: Any) -> dict:
        """Grow topics' partition counts (``topics alter --partitions``); Kafka never shrinks one."""
        results = []
        for t in req["Topics"]:
            out = {"Name": t["Name"], "ErrorCode": 0, "ErrorMessage": None}
            try:
                topic = self.storage.topic(t["Name"])
                if t["Assignments"] is not None:
                    out["ErrorCode"], out["ErrorMessage"] = E.INVALID_REQUEST, "manual replica assignment"
                elif t["Count"] <= topic.partitions:
                    out["ErrorCode"] = E.INVALID_PARTITIONS
                    out["ErrorMessage"] = f"topic {t['Name']!r} has {topic.partitions} partitions; the count can only grow"
                elif not req["ValidateOnly"]:
                    topic.alter(partitions=t["Count"])
                    self.storage.forget(t["Name"])
            except InvalidConfigError as exc:
                out["ErrorCode"], out["ErrorMessage"] = E.INVALID_PARTITIONS, str(exc)
            except LogBrokerError as exc:
                out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
            results.append(out)
        return {"Results": results}

    def incremental_alter_configs(self, req: dict, version: int, conn: Any) -> dict:
        """SET (0) and DELETE (1, back to the default) of topic configs; list APPEND/SUBTRACT and
        broker configs are refused (INVALID_REQUEST)."""
        results = []
        defaults = TopicConfig().to_kafka()
        for res in req["Resources"]:
            out = {"ErrorCode": 0, "ErrorMessage": None, "ResourceType": res["ResourceType"],
                   "ResourceName": res["ResourceName"]}
            changes: dict[str, Any] = {}
            for c in res["Configs"]:
                if c["ConfigOperation"] == 0 and c["Value"] is not None:
                    changes[c["Name"]] = c["Value"]
                elif c["ConfigOperation"] == 1 and c["Name"] in defaults:
                    changes[c["Name"]] = defaults[c["Name"]]
                elif c["ConfigOperation"] == 1:
                    changes[c["Name"]] = None  # unknown: with_overrides names it
                else:
                    out["ErrorCode"] = E.INVALID_REQUEST
                    out["ErrorMessage"] = f"{c['Name']}: only SET and DELETE of a topic config are supported"
            try:
                if res["ResourceType"] != 2:
                    out["ErrorCode"], out["ErrorMessage"] = E.INVALID_REQUEST, "only topic configs can be altered"
                elif not out["ErrorCode"]:
                    topic = self.storage.topic(res["ResourceName"])
                    if req["ValidateOnly"]:
                        topic.config.with_overrides(changes)
                    else:
                        topic.alter(changes)
                        self.storage.forget(res["ResourceName"])
            except InvalidConfigError as exc:
                out["ErrorCode"], out["ErrorMessage"] = E.INVALID_CONFIG, str(exc)
            except LogBrokerError as exc:
                out["ErrorCode"], out["ErrorMessage"] = _storage_error(exc), str(exc)
            results.append(out)
        return {"Responses": results}

    def _topic_configs(self, name: str) -> list[dict]:
        topic = self.storage.topic(name)
        defaults = TopicConfig().to_kafka()
        values = topic.config.to_kafka()
        return [{"Name": k, "Value": str(v), "ReadOnly": False,
                 "ConfigSource": 5 if defaults.get(k, v) == v else 1, "IsSensitive": False, "Synonyms": []}
                for k, v in values.items()]

    def _broker_configs(self) -> list[dict]:
        values = {"num.partitions": self.config.num_partitions,
                  "auto.create.topics.enable": str(self.config.auto_create_topics).lower(),
                  "group.initial.rebalance.delay.ms": self.config.initial_rebalance_delay_ms,
                  "socket.request.max.bytes": 100 * 1024 * 1024, "default.replication.factor": 1,
                  "log.dir": self.storage.data_dir}
        return [{"Name": k, "Value": str(v), "ReadOnly": True, "ConfigSource": 4, "IsSensitive": False, "Synonyms": []}
                for k, v in values.items()]
