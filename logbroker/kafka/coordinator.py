"""The group coordinator of Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
Heartbeat, LeaveGroup), in memory, for Kafka clients of ``logbroker serve``.

States of a group: Empty -> PreparingRebalance -> CompletingRebalance -> Stable, back to
PreparingRebalance on a join, a leave or a session expiry. The coordinator never reads
assignments: the leader client computes them from the members' subscriptions, which are stored
verbatim per member, apart from the assignments.

- A JoinGroup (v4+) with no member id gets MEMBER_ID_REQUIRED and a new id; the client rejoins.
- Joins are parked until every member has rejoined or the rebalance timeout (the largest of the
  members') runs out; members that did not rejoin are dropped. A group leaving Empty waits the
  initial rebalance delay first (Kafka's ``group.initial.rebalance.delay.ms``, 3 s).
- Completing a join bumps the generation and answers each parked join; only the leader gets the
  member list. The leader's SyncGroup carries the assignments; parked followers get theirs then.
- Members expire when not heard from (join, sync, heartbeat, commit) within their session timeout,
  counted from the answer to a parked join or sync; never while one is parked (Kafka's rule: a
  follower waiting for a dead leader's SyncGroup is not expired with it). Requests from stale
  generations get ILLEGAL_GENERATION.

Generations live only in memory: after a restart members get UNKNOWN_MEMBER_ID or
ILLEGAL_GENERATION and rejoin; committed offsets are on disk (:mod:`logbroker.groups.offsets`).

Concurrency: one asyncio loop; every method runs on it, so no locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from typing import Callable

from .errors import ErrorCode as E

__all__ = ["Coordinator"]

log = logging.getLogger("logbroker.serve")

EMPTY, PREPARING, COMPLETING, STABLE = "Empty", "PreparingRebalance", "CompletingRebalance", "Stable"


class Member:
    __slots__ = ("id", "instance_id", "client_id", "session_ms", "rebalance_ms", "protocols", "last_seen", "join",
                 "sync", "assignment", "join_version")

    def __init__(self, member_id: str, client_id: str) -> None:
        self.id = member_id
        self.instance_id: str | None = None
        self.client_id = client_id
        self.session_ms = 10_000
        self.rebalance_ms = 300_000
        self.protocols: list[tuple[str, bytes]] = []
        self.last_seen = time.monotonic()
        self.join: asyncio.Future | None = None
        self.sync: asyncio.Future | None = None
        self.assignment = b""
        self.join_version = 0

    def expired(self, now: float) -> bool:
        # Kafka's rule: a member parked in JoinGroup or SyncGroup is waiting for the coordinator
        # (for a leader that may be dead), not silent; its session runs again from the answer.
        parked = self.join is not None or (self.sync is not None and not self.sync.done())
        return not parked and now - self.last_seen > self.session_ms / 1000.0


class Group:
    def __init__(self, group_id: str) -> None:
        self.id = group_id
        self.state = EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.pending: dict[str, float] = {}  # member ids handed out by MEMBER_ID_REQUIRED -> when
        self.timer: asyncio.TimerHandle | None = None
        self.delay_until = 0.0
        self.rebalance_deadline = 0.0


class Coordinator:
    def __init__(self, initial_rebalance_delay_ms: int = 3000,
                 on_join_check: Callable[[str, list[tuple[str, bytes]]], str | None] | None = None,
                 on_empty: Callable[[str], None] | None = None) -> None:
        self.initial_delay = initial_rebalance_delay_ms / 1000.0
        self.groups: dict[str, Group] = {}
        #: called with (group id, protocols) before a member joins; a returned message refuses it
        self.on_join_check = on_join_check
        #: called with the group id when a group loses its last member
        self.on_empty = on_empty
        self._expiry: asyncio.Task | None = None

    def start(self) -> None:
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop())

    def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for group in self.groups.values():
            for m in group.members.values():
                for fut in (m.join, m.sync):
                    if fut is not None and not fut.done():
                        fut.cancel()

    # -- JoinGroup -----------------------------------------------------------------------------

    async def join(self, req: dict, version: int, client_id: str) -> dict:
        group_id = req["GroupId"]
        if not group_id:
            return {"ErrorCode": E.INVALID_GROUP_ID}
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        protocols = [(p["Name"], p["Metadata"]) for p in req["Protocols"]]
        if not protocols or (group.protocol_type is not None and group.members
                             and req["ProtocolType"] != group.protocol_type):
            return {"ErrorCode": E.INCONSISTENT_GROUP_PROTOCOL}
        member_id = req["MemberId"]
        if member_id == "" and version >= 4 and req.get("GroupInstanceId") is None:
            new_id = f"{client_id or 'consumer'}-{uuid.uuid4()}"
            group.pending[new_id] = time.monotonic()
            return {"ErrorCode": E.MEMBER_ID_REQUIRED, "MemberId": new_id, "GenerationId": -1}
        names = {name for name, _ in protocols}
        others = [m for m in group.members.values() if m.id != member_id]
        if any(not names & {name for name, _ in m.protocols} for m in others):
            return {"ErrorCode": E.INCONSISTENT_GROUP_PROTOCOL}
        member = group.members.get(member_id)
        if member is None and member_id != "" and member_id not in group.pending:
            return {"ErrorCode": E.UNKNOWN_MEMBER_ID}
        if self.on_join_check is not None:
            refusal = self.on_join_check(group_id, protocols)
            if refusal is not None:
                log.warning("group %r: refused a Kafka client's join: %s", group_id, refusal)
                if not group.members and self.on_empty is not None:
                    self.on_empty(group_id)
                return {"ErrorCode": E.INCONSISTENT_GROUP_PROTOCOL}
        if member is None:
            if member_id == "":
                member_id = f"{client_id or 'consumer'}-{uuid.uuid4()}"
            group.pending.pop(member_id, None)
            member = group.members[member_id] = Member(member_id, client_id)
            if group.leader is None:
                group.leader = member_id
        group.protocol_type = req["ProtocolType"]
        member.protocols = protocols
        member.instance_id = req.get("GroupInstanceId")
        member.session_ms = req["SessionTimeoutMs"]
        member.rebalance_ms = req.get("RebalanceTimeoutMs", -1)
        if member.rebalance_ms is None or member.rebalance_ms < 0:
            member.rebalance_ms = member.session_ms
        member.join_version = version
        member.last_seen = time.monotonic()
        if member.join is not None and not member.join.done():
            member.join.set_result({"ErrorCode": E.UNKNOWN_MEMBER_ID})  # superseded by this join
        member.join = asyncio.get_running_loop().create_future()
        fut = member.join
        if group.state != PREPARING:
            self._prepare(group)
        self._maybe_complete(group)
        return await fut

    def _prepare(self, group: Group) -> None:
        """Enter PreparingRebalance: pending syncs fail with REBALANCE_IN_PROGRESS."""
        now = time.monotonic()
        if group.state == EMPTY:
            group.delay_until = now + self.initial_delay
        else:
            group.delay_until = now
        for m in group.members.values():
            m.assignment = b""
            if m.sync is not None and not m.sync.done():
                m.sync.set_result({"ErrorCode": E.REBALANCE_IN_PROGRESS})
            m.sync = None
        group.state = PREPARING
        group.rebalance_deadline = now + max((m.rebalance_ms for m in group.members.values()), default=0) / 1000.0
        self._schedule(group, min(group.rebalance_deadline, max(group.delay_until, now)))

    def _schedule(self, group: Group, when: float) -> None:
        if group.timer is not None:
            group.timer.cancel()
        loop = asyncio.get_running_loop()
        group.timer = loop.call_later(max(0.0, when - time.monotonic()), self._on_timer, group)

    def _on_timer(self, group: Group) -> None:
        group.timer = None
        if group.state != PREPARING:
            return
        now = time.monotonic()
        if now >= group.rebalance_deadline:
            for m in [m for m in group.members.values() if m.join is None]:
                log.info("group %r: member %s did not rejoin within the rebalance timeout", group.id, m.id)
                del group.members[m.id]
            self._complete(group)
            return
        if not self._maybe_complete(group):
            self._schedule(group, group.rebalance_deadline if now >= group.delay_until else group.delay_until)

    def _maybe_complete(self, group: Group) -> bool:
        if group.state != PREPARING:
            return False
        if time.monotonic() < group.delay_until:
            self._schedule(group, group.delay_until)
            return False
        if all(m.join is not None for m in group.members.values()):
            self._complete(group)
            return True
        return False

    def _complete(self, group: Group) -> None:
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        group.generation += 1
        if not group.members:
            group.state, group.leader, group.protocol = EMPTY, None, None
            if self.on_empty is not None:
                self.on_empty(group.id)
            return
        members = list(group.members.values())
        common = set.intersection(*({name for name, _ in m.protocols} for m in members))
        votes = Counter(next(name for name, _ in m.protocols if name in common) for m in members)
        group.protocol = max(votes, key=lambda name: (votes[name], -[n for n, _ in members[0].protocols].index(name)))
        if group.leader not in group.members:
            group.leader = members[0].id
        group.state = COMPLETING
        for m in members:
            resp = {"ErrorCode": 0, "GenerationId": group.generation, "ProtocolName": group.protocol,
                    "Leader": group.leader, "MemberId": m.id, "Members": []}
            if m.id == group.leader:
                resp["Members"] = [{"MemberId": o.id, "GroupInstanceId": o.instance_id,
                                    "Metadata": dict(o.protocols)[group.protocol]} for o in members]
            if m.join is not None and not m.join.done():
                m.join.set_result(resp)
            m.join = None
            m.last_seen = time.monotonic()
        log.info("group %r: generation %d with %d member(s), protocol %s", group.id, group.generation, len(members),
                 group.protocol)

    # -- SyncGroup -----------------------------------------------------------------------------

    async def sync(self, req: dict, version: int) -> dict:
        group, member, error = self._member(req["GroupId"], req["MemberId"], req["GenerationId"])
        if error:
            return {"ErrorCode": error}
        if group.state == PREPARING:
            return {"ErrorCode": E.REBALANCE_IN_PROGRESS}
        if group.state == STABLE:
            return {"ErrorCode": 0, "Assignment": member.assignment}
        if member.id == group.leader:
            given = {a["MemberId"]: a["Assignment"] for a in req["Assignments"]}
            group.state = STABLE
            for m in group.members.values():
                m.assignment = given.get(m.id, b"")
                if m.sync is not None and not m.sync.done():
                    m.sync.set_result({"ErrorCode": 0, "Assignment": m.assignment})
                m.sync = None
            return {"ErrorCode": 0, "Assignment": member.assignment}
        if member.sync is not None and not member.sync.done():
            member.sync.set_result({"ErrorCode": E.REBALANCE_IN_PROGRESS})
        member.sync = asyncio.get_running_loop().create_future()
        answer = await member.sync
        member.last_seen = time.monotonic()
        return answer

    # -- Heartbeat, LeaveGroup -----------------------------------------------------------------

    def heartbeat(self, req: dict, version: int) -> dict:
        group, member, error = self._member(req["GroupId"], req["MemberId"], req["GenerationId"])
        if error:
            return {"ErrorCode": error}
        if group.state == PREPARING:
            return {"ErrorCode": E.REBALANCE_IN_PROGRESS}
        return {"ErrorCode": 0}

    def leave(self, req: dict, version: int) -> dict:
        group = self.groups.get(req["GroupId"])
        if version >= 3:
            ids = [m["MemberId"] for m in req["Members"]]
        else:
            ids = [req["MemberId"]]
        results = []
        for member_id in ids:
            if group is None or member_id not in group.members:
                results.append({"MemberId": member_id, "GroupInstanceId": None, "ErrorCode": E.UNKNOWN_MEMBER_ID})
                continue
            self._remove(group, group.members[member_id], "left the group")
            results.append({"MemberId": member_id, "GroupInstanceId": None, "ErrorCode": 0})
        if version >= 3:
            return {"ErrorCode": 0, "Members": results}
        return {"ErrorCode": results[0]["ErrorCode"]}

    def _remove(self, group: Group, member: Member, why: str) -> None:
        log.info("group %r: member %s %s", group.id, member.id, why)
        del group.members[member.id]
        for fut in (member.join, member.sync):
            if fut is not None and not fut.done():
                fut.set_result({"ErrorCode": E.UNKNOWN_MEMBER_ID})
        if group.leader == member.id:
            group.leader = next(iter(group.members), None)
        if not group.members:
            if group.timer is not None:
                group.timer.cancel()
                group.timer = None
            if group.state != EMPTY:
                group.generation += 1
            group.state, group.protocol = EMPTY, None
            if self.on_empty is not None:
                self.on_empty(group.id)
            return
        if group.state in (STABLE, COMPLETING):
            self._prepare(group)
        self._maybe_complete(group)

    # -- commits -------------------------------------------------------------------------------

    def commit_error(self, group_id: str, generation: int, member_id: str) -> int:
        """Kafka's OffsetCommit checks; 0 when the commit may be stored."""
        group = self.groups.get(group_id)
        if generation < 0:
            if group is None or not group.members:
                return 0
            return E.UNKNOWN_MEMBER_ID
        if group is None:
            return E.ILLEGAL_GENERATION
        member = group.members.get(member_id)
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        member.last_seen = time.monotonic()
        if generation != group.generation:
            return E.ILLEGAL_GENERATION
        if group.state == COMPLETING:
            return E.REBALANCE_IN_PROGRESS
        return 0

    def live_members(self, group_id: str) -> list[str]:
        group = self.groups.get(group_id)
        return [] if group is None else list(group.members)

    # -- internals -----------------------------------------------------------------------------

    def _member(self, group_id: str, member_id: str, generation: int) -> tuple[Group, Member, int]:
        group = self.groups.get(group_id)
        member = None if group is None else group.members.get(member_id)
        if member is None:
            return group, member, E.UNKNOWN_MEMBER_ID
        member.last_seen = time.monotonic()
        if generation != group.generation:
            return group, member, E.ILLEGAL_GENERATION
        return group, member, 0

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for group in list(self.groups.values()):
                for m in [m for m in group.members.values() if m.expired(now)]:
                    self._remove(group, m, f"expired (no heartbeat for {m.session_ms} ms)")
                for pid, since in list(group.pending.items()):
                    if now - since > 300:
                        del group.pending[pid]
