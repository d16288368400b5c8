"""Write the format-v1 golden partition into tests/golden/v1/ (run once; the bytes are committed).

    python tests/golden/make_golden.py

It makes topic ``golden`` with one partition of two segments: a batch of three records with keys,
headers and unicode, a single-record batch, eight batches of five (so the
first segment carries index entries), then a roll (segment.bytes) and two more batches. Timestamps are fixed, so running it again gives the same
bytes except ``topic.json``'s ``created_ms``. tests/test_golden.py holds the expected records.
"""

from __future__ import annotations

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from logbroker.storage.record import PendingRecord  # noqa: E402
from logbroker.storage.topic import Topic  # noqa: E402

T0 = 1_764_230_400_000
BATCHES = [
    [(T0, "u1", {"source": "web"}, {"item": "lightstick", "qty": 2}),
     (T0 + 1, None, None, {"item": "poster", "note": "ü ß 🎤 \u2028"}),
     (T0 + 2, "u2", {"a": "1", "b": ""}, [1, 2.5, None, True, "x"])],
    [(T0 + 10, "solo", None, "a single-record batch")],
    *[[(T0 + 20 + 5 * b + i, f"k{i}", None, {"i": 5 * b + i, "pad": "p" * 60}) for i in range(5)]
      for b in range(8)],
    [(T0 + 100, "u3", {"h": "v"}, {"after": "roll"}), (T0 + 99, None, None, 0)],
    [(T0 + 200, None, None, None)],
]


def main() -> None:
    out = os.path.join(HERE, "v1")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    t = Topic.create(out, "golden", 1, {"segment.bytes": 5000, "index.interval.bytes": 1000})
    log = t.log(0)
    for batch in BATCHES:
        log.append([PendingRecord(ts, key, headers, value) for ts, key, headers, value in batch])
    t.close()
    os.remove(os.path.join(out, "golden", "golden-0", ".lock"))


if __name__ == "__main__":
    main()
