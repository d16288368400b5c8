"""The storage layer: the bytes on disk and the partition logs made of them.

Bottom-up: ``fsutil`` (every durability rule: fsync, atomic replace, locks), ``record`` /
``record_bytes`` (the record codec), ``index`` and ``checkpoint`` (the derived and state files),
``segment`` (scanning one segment), ``recovery`` (checking a partition), ``log`` (one partition:
append, roll, retain), ``reader`` (lock-free reads), ``cleaner`` / ``compaction`` (log compaction),
``topic`` (partitions of one topic), ``policy`` and ``config`` (pure rules and settings),
``datadir`` (where the data directory is). FORMAT.md defines the bytes. Imports only ``errors``.
"""
