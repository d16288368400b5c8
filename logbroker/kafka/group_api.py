"""FindCoordinator, the group requests, OffsetCommit/OffsetFetch and the group admin requests
(ListGroups, DescribeGroups, DeleteGroups): the coordinator's answers,
with committed offsets stored where logbroker's own groups keep theirs (FORMAT.md, "Committed
offsets and consumer groups"), so ``logbroker groups describe`` shows a Kafka group's commits and
lag, and ``groups reset-offsets`` moves them.

Committed offsets are the next offset to read. The store never moves an offset backwards (a
backwards commit from a group member is skipped and logged), except for an admin commit
(generation -1, no member id: Kafka's AlterConsumerGroupOffsets, ``groups reset-offsets
--bootstrap-server``). A commit from outside the group (generation -1) is refused with
UNKNOWN_MEMBER_ID while the group has live members of either kind, as Kafka refuses one to a
group that is not empty. The metadata string a
client commits with an offset is stored with it and returned by OffsetFetch (a null one as ""); one
longer than Kafka's ``offset.metadata.max.bytes`` (4,096) gets OFFSET_METADATA_TOO_LARGE.

A group is known when the coordinator holds it (Kafka members) or it has state on some topic
(committed offsets, logbroker consumers). DescribeGroups shows the coordinator's members only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ..storage.config import validate_group_name
from ..errors import (GroupNotEmptyError, InvalidNameError, LogBrokerError, UnknownGroupError, UnknownPartitionError,
                      UnknownTopicError)
from ..groups.membership import refuse_if_live
from ..groups.offsets import CommittedOffset, GroupPaths, OffsetStore, topic_groups
from .coordinator import Coordinator
from .errors import ErrorCode as E
from .handlers import NODE_ID, ServerConfig
from .storage import Storage

__all__ = ["GroupHandlers"]

log = logging.getLogger("logbroker.serve")
MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes: a longer commit metadata string is refused


class GroupHandlers:
    def __init__(self, storage: Storage, config: ServerConfig, coordinator: Coordinator) -> None:
        self.storage = storage
        self.config = config
        self.coordinator = coordinator

    def find_coordinator(self, req: dict, version: int, conn: Any) -> dict:
        # Node 0 for transaction coordinators too: a transactional producer then sends InitProducerId,
        # which refuses it with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (an error here would be retried).
        return {"ErrorCode": 0, "ErrorMessage": None, "NodeId": NODE_ID, "Host": self.config.host,
                "Port": self.config.port}

    async def join_group(self, req: dict, version: int, conn: Any) -> dict:
        return await self.coordinator.join(req, version, conn.client_id or "")

    async def sync_group(self, req: dict, version: int, conn: Any) -> dict:
        return await self.coordinator.sync(req, version)

    def heartbeat(self, req: dict, version: int, conn: Any) -> dict:
        return self.coordinator.heartbeat(req, version)

    def leave_group(self, req: dict, version: int, conn: Any) -> dict:
        return self.coordinator.leave(req, version)

    # -- offsets -------------------------------------------------------------------------------

    async def offset_commit(self, req: dict, version: int, conn: Any) -> dict:
        group = req["GroupId"]
        generation = req.get("GenerationIdOrMemberEpoch", -1)
        member = req.get("MemberId", "")
        error = self.coordinator.commit_error(group, generation, member)
        try:
            validate_group_name(group)
        except InvalidNameError:
            error = E.INVALID_GROUP_ID
        topics = []
        for t in req["Topics"]:
            codes = {p["PartitionIndex"]: error for p in t["Partitions"]}
            if not error:
                changes = {}
                try:
                    topic = self.storage.topic(t["Name"])
                    for p in t["Partitions"]:
                        index, offset = p["PartitionIndex"], p["CommittedOffset"]
                        if not 0 <= index < topic.partitions:
                            codes[index] = E.UNKNOWN_TOPIC_OR_PARTITION
                        elif offset < 0:
                            codes[index] = E.OFFSET_OUT_OF_RANGE
                        elif len((p.get("CommittedMetadata") or "").encode("utf-8")) > MAX_METADATA_BYTES:
                            codes[index] = E.OFFSET_METADATA_TOO_LARGE
                        else:
                            changes[index] = CommittedOffset(offset, max(generation, 0), member or "kafka",
                                                             int(time.time() * 1000), p.get("CommittedMetadata") or "")
                    if changes:
                        await asyncio.to_thread(_commit, topic.path, group, topic.name, changes,
                                                outsider=generation < 0, admin=generation < 0 and not member)
                except (UnknownTopicError, UnknownPartitionError, InvalidNameError):
                    codes = {i: E.UNKNOWN_TOPIC_OR_PARTITION for i in codes}
                except GroupNotEmptyError as exc:
                    log.warning("commit of group %r on %s refused: %s", group, t["Name"], exc)
                    codes = {i: E.UNKNOWN_MEMBER_ID if c == 0 else c for i, c in codes.items()}
                except LogBrokerError as exc:
                    log.warning("commit of group %r on %s failed: %s", group, t["Name"], exc)
                    codes = {i: E.KAFKA_STORAGE_ERROR if c == 0 else c for i, c in codes.items()}
            topics.append({"Name": t["Name"], "Partitions": [{"PartitionIndex": i, "ErrorCode": c}
                                                            for i, c in codes.items()]})
        return {"Topics": topics}

    def offset_fetch(self, req: dict, version: int, conn: Any) -> dict:
        group = req["GroupId"]
        wanted = req.get("Topics")
        if wanted is None:
            wanted = []
            for name in self.storage.list_topics():
                try:
                    topic = self.storage.topic(name)
                    committed = OffsetStore(GroupPaths(topic.path, group), name).read()
                except LogBrokerError:
                    continue
                if committed:
                    wanted.append({"Name": name, "PartitionIndexes": sorted(committed)})
        topics = []
        for t in wanted:
            parts = []
            try:
                topic = self.storage.topic(t["Name"])
                committed = OffsetStore(GroupPaths(topic.path, group), topic.name).read()
                error = 0
            except (UnknownTopicError, InvalidNameError):
                committed, error = {}, 0
            except LogBrokerError as exc:
                log.warning("reading the commits of group %r on %s failed: %s", group, t["Name"], exc)
                committed, error = {}, E.KAFKA_STORAGE_ERROR
            for index in t["PartitionIndexes"]:
                c = committed.get(index)
                parts.append({"PartitionIndex": index, "CommittedOffset": -1 if c is None else c.offset,
                              "CommittedLeaderEpoch": -1, "Metadata": "" if c is None else c.metadata,
                              "ErrorCode": error})
            topics.append({"Name": t["Name"], "Partitions": parts})
        return {"Topics": topics, "ErrorCode": 0}


    # -- group admin ---------------------------------------------------------------------------

    def list_groups(self, req: dict, version: int, conn: Any) -> dict:
        names = {g.id for g in self.coordinator.groups.values() if g.members} | self._groups_on_disk()
        return {"ErrorCode": 0, "Groups": [{"GroupId": g, "ProtocolType": "consumer"} for g in sorted(names)]}

    def describe_groups(self, req: dict, version: int, conn: Any) -> dict:
        out = []
        for group_id in req["Groups"]:
            entry: dict[str, Any] = {"ErrorCode": 0, "GroupId": group_id, "GroupState": "Dead", "ProtocolType": "",
                                     "ProtocolData": "", "Members": []}
            group = self.coordinator.groups.get(group_id)
            if group is not None and group.members:
                entry.update(GroupState=group.state, ProtocolType=group.protocol_type or "consumer",
                             ProtocolData=group.protocol or "")
                entry["Members"] = [{"MemberId": m.id, "GroupInstanceId": m.instance_id, "ClientId": m.client_id,
                                     "ClientHost": "", "MemberAssignment": m.assignment,
                                     "MemberMetadata": dict(m.protocols).get(group.protocol or "", b"")}
                                    for m in group.members.values()]
            elif group_id in self._groups_on_disk():
                entry.update(GroupState="Empty", ProtocolType="consumer")
            out.append(entry)
        return {"Groups": out}

    async def delete_groups(self, req: dict, version: int, conn: Any) -> dict:
        from ..groups.admin import delete_group
        results = []
        for group_id in req["GroupsNames"]:
            code = 0
            if self.coordinator.live_members(group_id):
                code = E.NON_EMPTY_GROUP
            else:
                try:
                    await asyncio.to_thread(delete_group, self.storage.data_dir, group_id)
                    self.coordinator.groups.pop(group_id, None)
                except GroupNotEmptyError:
                    code = E.NON_EMPTY_GROUP
                except (UnknownGroupError, InvalidNameError):
                    code = E.GROUP_ID_NOT_FOUND
                except LogBrokerError as exc:
                    log.warning("deleting group %r failed: %s", group_id, exc)
                    code = E.KAFKA_STORAGE_ERROR
            results.append({"GroupId": group_id, "ErrorCode": code})
        return {"Results": results}

    def _groups_on_disk(self) -> set[str]:
        return {g for topic in self.storage.list_topics()
                for g in topic_groups(os.path.join(self.storage.data_dir, topic))}


def _commit(topic_dir: str, group: str, topic: str, changes: dict[int, CommittedOffset], *, outsider: bool = False,
            admin: bool = False) -> None:
    """Store a Kafka client's commit. One from outside the group (generation -1) is refused with
    GroupNotEmptyError while logbroker consumers are live in it, as Kafka refuses one to a group
    with members: it would move their committed offsets under them."""
    paths = GroupPaths(topic_dir, group)
    paths.ensure()
    with paths.locked(timeout_s=5.0):
        if outsider:
            refuse_if_live(paths, lambda live: GroupNotEmptyError(
                f"commit from outside group {group!r} refused: logbroker consumers {', '.join(live)} are live in it "
                f"on topic {topic!r}", group=group, topic=topic))
        OffsetStore(paths, topic).commit(changes, allow_backwards=admin)
