"""The request and response layouts of the APIs ``logbroker serve`` speaks, per version.

Facts from Kafka's message definitions, transcribed for the advertised ranges only (see
:data:`API_VERSIONS`). Within these ranges only ApiVersions v3+ is *flexible* (compact strings and
tagged fields); its response header stays v0 all the same (KIP-511).

The ranges keep exact old versions on purpose: librdkafka before 2.11.1 (Debian's kcat) enables a
feature only when the broker's range contains one exact version (Produce 3 and Fetch 4 for record
batches v2, FindCoordinator 0, JoinGroup/SyncGroup/Heartbeat/LeaveGroup 0, OffsetCommit 2,
OffsetFetch 1, ListOffsets 1, InitProducerId 0); the maxima avoid topic ids and fetch sessions
(Fetch 12+, Metadata 9+) and what aiokafka cannot pick from its fixed version lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from .wire import F, Field

__all__ = ["Api", "APIS", "API_VERSIONS", "by_key"]


@dataclass(frozen=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    flexible_from: int
    request: tuple[Field, ...]
    response: tuple[Field, ...]

    def flexible(self, version: int) -> bool:
        return version >= self.flexible_from


def _api(key, name, lo, hi, flex, request, response) -> Api:
    return Api(key, name, lo, hi, flex, tuple(request), tuple(response))


PRODUCE = _api(0, "Produce", 3, 8, 9, [
    F("TransactionalId", "str", nullable="0+"),
    F("Acks", "i16"),
    F("TimeoutMs", "i32"),
    F("TopicData", "[]", fields=[
        F("Name", "str"),
        F("PartitionData", "[]", fields=[F("Index", "i32"), F("Records", "records", nullable="0+")]),
    ]),
], [
    F("Responses", "[]", fields=[
        F("Name", "str"),
        F("PartitionResponses", "[]", fields=[
            F("Index", "i32"), F("ErrorCode", "i16"), F("BaseOffset", "i64"),
            F("LogAppendTimeMs", "i64", "2+", default=-1), F("LogStartOffset", "i64", "5+", default=-1),
            F("RecordErrors", "[]", "8+", fields=[F("BatchIndex", "i32"),
                                                  F("BatchIndexErrorMessage", "str", nullable="0+")]),
            F("ErrorMessage", "str", "8+", nullable="0+"),
        ]),
    ]),
    F("ThrottleTimeMs", "i32", "1+"),
])

FETCH = _api(1, "Fetch", 4, 11, 12, [
    F("ReplicaId", "i32", default=-1), F("MaxWaitMs", "i32"), F("MinBytes", "i32"),
    F("MaxBytes", "i32", "3+", default=0x7FFFFFFF), F("IsolationLevel", "i8", "4+"),
    F("SessionId", "i32", "7+"), F("SessionEpoch", "i32", "7+", default=-1),
    F("Topics", "[]", fields=[
        F("Topic", "str"),
        F("Partitions", "[]", fields=[
            F("Partition", "i32"), F("CurrentLeaderEpoch", "i32", "9+", default=-1), F("FetchOffset", "i64"),
            F("LogStartOffset", "i64", "5+", default=-1), F("PartitionMaxBytes", "i32"),
        ]),
    ]),
    F("ForgottenTopicsData", "[]", "7+", fields=[F("Topic", "str"), F("Partitions", "[i32]")]),
    F("RackId", "str", "11+"),
], [
    F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16", "7+"), F("SessionId", "i32", "7+"),
    F("Responses", "[]", fields=[
        F("Topic", "str"),
        F("Partitions", "[]", fields=[
            F("PartitionIndex", "i32"), F("ErrorCode", "i16"), F("HighWatermark", "i64"),
            F("LastStableOffset", "i64", "4+", default=-1), F("LogStartOffset", "i64", "5+", default=-1),
            F("AbortedTransactions", "[]", "4+", nullable="4+",
              fields=[F("ProducerId", "i64"), F("FirstOffset", "i64")]),
            F("PreferredReadReplica", "i32", "11+", default=-1),
            F("Records", "records", nullable="0+"),
        ]),
    ]),
])

LIST_OFFSETS = _api(2, "ListOffsets", 1, 5, 6, [
    F("ReplicaId", "i32"), F("IsolationLevel", "i8", "2+"),
    F("Topics", "[]", fields=[
        F("Name", "str"),
        F("Partitions", "[]", fields=[F("PartitionIndex", "i32"), F("CurrentLeaderEpoch", "i32", "4+", default=-1),
                                      F("Timestamp", "i64")]),
    ]),
], [
    F("ThrottleTimeMs", "i32", "2+"),
    F("Topics", "[]", fields=[
        F("Name", "str"),
        F("Partitions", "[]", fields=[F("PartitionIndex", "i32"), F("ErrorCode", "i16"),
                                      F("Timestamp", "i64", default=-1), F("Offset", "i64", default=-1),
                                      F("LeaderEpoch", "i32", "4+", default=-1)]),
    ]),
])

METADATA = _api(3, "Metadata", 4, 8, 9, [
    F("Topics", "[]", nullable="1+", fields=[F("Name", "str")]),
    F("AllowAutoTopicCreation", "bool", "4+", default=True),
    F("IncludeClusterAuthorizedOperations", "bool", "8-10"),
    F("IncludeTopicAuthorizedOperations", "bool", "8+"),
], [
    F("ThrottleTimeMs", "i32", "3+"),
    F("Brokers", "[]", fields=[F("NodeId", "i32"), F("Host", "str"), F("Port", "i32"),
                               F("Rack", "str", "1+", nullable="1+")]),
    F("ClusterId", "str", "2+", nullable="2+"),
    F("ControllerId", "i32", "1+", default=-1),
    F("Topics", "[]", fields=[
        F("ErrorCode", "i16"), F("Name", "str"), F("IsInternal", "bool", "1+"),
        F("Partitions", "[]", fields=[
            F("ErrorCode", "i16"), F("PartitionIndex", "i32"), F("LeaderId", "i32"),
            F("LeaderEpoch", "i32", "7+", default=-1), F("ReplicaNodes", "[i32]"), F("IsrNodes", "[i32]"),
            F("OfflineReplicas", "[i32]", "5+"),
        ]),
        F("TopicAuthorizedOperations", "i32", "8+", default=-2147483648),
    ]),
    F("ClusterAuthorizedOperations", "i32", "8-10", default=-2147483648),
])

OFFSET_COMMIT = _api(8, "OffsetCommit", 2, 7, 8, [
    F("GroupId", "str"), F("GenerationIdOrMemberEpoch", "i32", "1+", default=-1), F("MemberId", "str", "1+"),
    F("GroupInstanceId", "str", "7+", nullable="7+"), F("RetentionTimeMs", "i64", "2-4", default=-1),
    F("Topics", "[]", fields=[
        F("Name", "str"),
        F("Partitions", "[]", fields=[F("PartitionIndex", "i32"), F("CommittedOffset", "i64"),
                                      F("CommittedLeaderEpoch", "i32", "6+", default=-1),
                                      F("CommittedMetadata", "str", nullable="0+")]),
    ]),
], [
    F("ThrottleTimeMs", "i32", "3+"),
    F("Topics", "[]", fields=[F("Name", "str"),
                              F("Partitions", "[]", fields=[F("PartitionIndex", "i32"), F("ErrorCode", "i16")])]),
])

OFFSET_FETCH = _api(9, "OffsetFetch", 1, 5, 6, [
    F("GroupId", "str"),
    F("Topics", "[]", nullable="2+", fields=[F("Name", "str"), F("PartitionIndexes", "[i32]")]),
], [
    F("ThrottleTimeMs", "i32", "3+"),
    F("Topics", "[]", fields=[
        F("Name", "str"),
        F("Partitions", "[]", fields=[F("PartitionIndex", "i32"), F("CommittedOffset", "i64", default=-1),
                                      F("CommittedLeaderEpoch", "i32", "5+", default=-1),
                                      F("Metadata", "str", nullable="0+"), F("ErrorCode", "i16")]),
    ]),
    F("ErrorCode", "i16", "2+"),
])

FIND_COORDINATOR = _api(10, "FindCoordinator", 0, 2, 3, [
    F("Key", "str"), F("KeyType", "i8", "1+"),
], [
    F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16"), F("ErrorMessage", "str", "1+", nullable="1+"),
    F("NodeId", "i32"), F("Host", "str"), F("Port", "i32"),
])

JOIN_GROUP = _api(11, "JoinGroup", 0, 5, 6, [
    F("GroupId", "str"), F("SessionTimeoutMs", "i32"), F("RebalanceTimeoutMs", "i32", "1+", default=-1),
    F("MemberId", "str"), F("GroupInstanceId", "str", "5+", nullable="5+"), F("ProtocolType", "str"),
    F("Protocols", "[]", fields=[F("Name", "str"), F("Metadata", "bytes")]),
], [
    F("ThrottleTimeMs", "i32", "2+"), F("ErrorCode", "i16"), F("GenerationId", "i32", default=-1),
    F("ProtocolName", "str"), F("Leader", "str"), F("MemberId", "str"),
    F("Members", "[]", fields=[F("MemberId", "str"), F("GroupInstanceId", "str", "5+", nullable="5+"),
                               F("Metadata", "bytes")]),
])

HEARTBEAT = _api(12, "Heartbeat", 0, 3, 4, [
    F("GroupId", "str"), F("GenerationId", "i32"), F("MemberId", "str"),
    F("GroupInstanceId", "str", "3+", nullable="3+"),
], [F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16")])

LEAVE_GROUP = _api(13, "LeaveGroup", 0, 3, 4, [
    F("GroupId", "str"), F("MemberId", "str", "0-2"),
    F("Members", "[]", "3+", fields=[F("MemberId", "str"), F("GroupInstanceId", "str", nullable="0+")]),
], [
    F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16"),
    F("Members", "[]", "3+", fields=[F("MemberId", "str"), F("GroupInstanceId", "str", nullable="0+"),
                                     F("ErrorCode", "i16")]),
])

SYNC_GROUP = _api(14, "SyncGroup", 0, 3, 4, [
    F("GroupId", "str"), F("GenerationId", "i32"), F("MemberId", "str"),
    F("GroupInstanceId", "str", "3+", nullable="3+"),
    F("Assignments", "[]", fields=[F("MemberId", "str"), F("Assignment", "bytes")]),
], [F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16"), F("Assignment", "bytes")])

DESCRIBE_GROUPS = _api(15, "DescribeGroups", 0, 4, 5, [
    F("Groups", "[str]"), F("IncludeAuthorizedOperations", "bool", "3+"),
], [
    F("ThrottleTimeMs", "i32", "1+"),
    F("Groups", "[]", fields=[
        F("ErrorCode", "i16"), F("GroupId", "str"), F("GroupState", "str"), F("ProtocolType", "str"),
        F("ProtocolData", "str"),
        F("Members", "[]", fields=[
            F("MemberId", "str"), F("GroupInstanceId", "str", "4+", nullable="4+"), F("ClientId", "str"),
            F("ClientHost", "str"), F("MemberMetadata", "bytes"), F("MemberAssignment", "bytes"),
        ]),
        F("AuthorizedOperations", "i32", "3+", default=-2147483648),
    ]),
])

LIST_GROUPS = _api(16, "ListGroups", 0, 2, 3, [], [
    F("ThrottleTimeMs", "i32", "1+"), F("ErrorCode", "i16"),
    F("Groups", "[]", fields=[F("GroupId", "str"), F("ProtocolType", "str")]),
])

API_VERSIONS_API = _api(18, "ApiVersions", 0, 4, 3, [
    F("ClientSoftwareName", "str", "3+"), F("ClientSoftwareVersion", "str", "3+"),
], [
    F("ErrorCode", "i16"),
    F("ApiKeys", "[]", fields=[F("ApiKey", "i16"), F("MinVersion", "i16"), F("MaxVersion", "i16")]),
    F("ThrottleTimeMs", "i32", "1+"),
])

CREATE_TOPICS = _api(19, "CreateTopics", 2, 4, 5, [
    F("Topics", "[]", fields=[
        F("Name", "str"), F("NumPartitions", "i32"), F("ReplicationFactor", "i16"),
        F("Assignments", "[]", fields=[F("PartitionIndex", "i32"), F("BrokerIds", "[i32]")]),
        F("Configs", "[]", fields=[F("Name", "str"), F("Value", "str", nullable="0+")]),
    ]),
    F("TimeoutMs", "i32"), F("ValidateOnly", "bool", "1+"),
], [
    F("ThrottleTimeMs", "i32", "2+"),
    F("Topics", "[]", fields=[F("Name", "str"), F("ErrorCode", "i16"), F("ErrorMessage", "str", "1+", nullable="0+")]),
])

DELETE_TOPICS = _api(20, "DeleteTopics", 1, 3, 4, [
    F("TopicNames", "[str]"), F("TimeoutMs", "i32"),
], [
    F("ThrottleTimeMs", "i32", "1+"),
    F("Responses", "[]", fields=[F("Name", "str"), F("ErrorCode", "i16")]),
])

INIT_PRODUCER_ID = _api(22, "InitProducerId", 0, 1, 2, [
    F("TransactionalId", "str", nullable="0+"), F("TransactionTimeoutMs", "i32"),
], [
    F("ThrottleTimeMs", "i32"), F("ErrorCode", "i16"), F("ProducerId", "i64", default=-1),
    F("ProducerEpoch", "i16", default=-1),
])

DESCRIBE_CONFIGS = _api(32, "DescribeConfigs", 1, 2, 4, [
    F("Resources", "[]", fields=[F("ResourceType", "i8"), F("ResourceName", "str"),
                                 F("ConfigurationKeys", "[str]", nullable="0+")]),
    F("IncludeSynonyms", "bool", "1+"),
], [
    F("ThrottleTimeMs", "i32"),
    F("Results", "[]", fields=[
        F("ErrorCode", "i16"), F("ErrorMessage", "str", nullable="0+"), F("ResourceType", "i8"),
        F("ResourceName", "str"),
        F("Configs", "[]", fields=[
            F("Name", "str"), F("Value", "str", nullable="0+"), F("ReadOnly", "bool"),
            F("ConfigSource", "i8", "1+", default=-1), F("IsSensitive", "bool"),
            F("Synonyms", "[]", "1+", fields=[F("Name", "str"), F("Value", "str", nullable="0+"), F("Source", "i8")]),
        ]),
    ]),
])

CREATE_PARTITIONS = _api(37, "CreatePartitions", 0, 1, 2, [
    F("Topics", "[]", fields=[F("Name", "str"), F("Count", "i32"),
                              F("Assignments", "[]", nullable="0+", fields=[F("BrokerIds", "[i32]")])]),
    F("TimeoutMs", "i32"), F("ValidateOnly", "bool"),
], [
    F("ThrottleTimeMs", "i32"),
    F("Results", "[]", fields=[F("Name", "str"), F("ErrorCode", "i16"), F("ErrorMessage", "str", nullable="0+")]),
])

DELETE_GROUPS = _api(42, "DeleteGroups", 0, 1, 2, [F("GroupsNames", "[str]")], [
    F("ThrottleTimeMs", "i32"),
    F("Results", "[]", fields=[F("GroupId", "str"), F("ErrorCode", "i16")]),
])

INCREMENTAL_ALTER_CONFIGS = _api(44, "IncrementalAlterConfigs", 0, 0, 1, [
    F("Resources", "[]", fields=[
        F("ResourceType", "i8"), F("ResourceName", "str"),
        F("Configs", "[]", fields=[F("Name", "str"), F("ConfigOperation", "i8"), F("Value", "str", nullable="0+")]),
    ]),
    F("ValidateOnly", "bool"),
], [
    F("ThrottleTimeMs", "i32"),
    F("Responses", "[]", fields=[F("ErrorCode", "i16"), F("ErrorMessage", "str", nullable="0+"),
                                 F("ResourceType", "i8"), F("ResourceName", "str")]),
])

APIS: tuple[Api, ...] = (PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR,
                         JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP, API_VERSIONS_API, CREATE_TOPICS,
                         DELETE_TOPICS, INIT_PRODUCER_ID, DESCRIBE_CONFIGS, DESCRIBE_GROUPS, LIST_GROUPS,
                         CREATE_PARTITIONS, DELETE_GROUPS, INCREMENTAL_ALTER_CONFIGS)

by_key: dict[int, Api] = {api.key: api for api in APIS}

#: (ApiKey, MinVersion, MaxVersion) as ApiVersions advertises them.
API_VERSIONS = tuple((api.key, api.min_version, api.max_version) for api in APIS)
