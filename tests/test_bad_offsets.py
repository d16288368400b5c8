"""Bad offsets, partitions, timestamps and durations.

Part of the bad-input catalogue: its rules and sandbox are in ``badinput.py``.
"""

from __future__ import annotations


import pytest

from badinput import I64, refused
from logbroker.groups import admin


# -- offsets -------------------------------------------------------------------------------------------

def _offset_cases():
    # (id, argv builder given the span, needles builder, exit code)
    yield ("consume-negative", lambda s: ["consume", "t", "--partition", "0", "--offset", "-1"],
           lambda s: ["--offset must be 0 or more, got -1"], 2)
    yield ("consume-2^63", lambda s: ["consume", "t", "--partition", "0", "--offset", I64],
           lambda s: [f"--offset {I64} is out of range for t-0", f"valid offsets are {s['start']} (log start) "
                      f"to {s['end']} (log end)"], 1)
    yield ("consume-non-numeric", lambda s: ["consume", "t", "--partition", "0", "--offset", "abc"],
           lambda s: ["'--offset'", "integer"], 2)
    yield ("consume-below-log-start", lambda s: ["consume", "t", "--partition", "0", "--offset", str(s["start"] - 1)],
           lambda s: [f"--offset {s['start'] - 1} is out of range for t-0", f"valid offsets are {s['start']}"], 1)
    yield ("consume-beyond-log-end", lambda s: ["consume", "t", "--partition", "0", "--offset", str(s["end"] + 1)],
           lambda s: [f"--offset {s['end'] + 1} is out of range", f"to {s['end']} (log end)"], 1)
    yield ("consume-offset-without-partition", lambda s: ["consume", "t", "--offset", "3"],
           lambda s: ["--offset needs --partition"], 2)
    yield ("consume-partition-99", lambda s: ["consume", "t", "--partition", "99", "--timeout-ms", "50"],
           lambda s: ["partition 99 does not exist", "'t' has partitions 0 to 0"], 1)
    yield ("consume-partition-negative", lambda s: ["consume", "t", "--partition", "-1", "--timeout-ms", "50"],
           lambda s: ["partition -1 does not exist"], 1)
    yield ("consume-max-messages-0", lambda s: ["consume", "t", "--max-messages", "0"],
           lambda s: ["--max-messages must be at least 1, got 0"], 2)
    yield ("consume-format-unknown", lambda s: ["consume", "t", "--format", "xml"],
           lambda s: ["--format must be json, envelope or pretty, not 'xml'"], 2)
    yield ("replay-from-negative", lambda s: ["replay", "t", "--from-offset", "-1"],
           lambda s: ["--from-offset must be an integer >= 0, got -1"], 2)
    yield ("replay-from-2^63", lambda s: ["replay", "t", "--from-offset", I64],
           lambda s: [f"cannot replay t-0 from offset {I64}", "beyond the log end",
                      f"valid offsets are {s['start']} (log start) to {s['end']} (log end)"], 1)
    yield ("replay-from-non-numeric", lambda s: ["replay", "t", "--from-offset", "1e3x"],
           lambda s: ["'--from-offset'", "integer"], 2)
    yield ("replay-from-below-log-start", lambda s: ["replay", "t", "--from-offset", "0"],
           lambda s: ["cannot replay t-0 from offset 0", "retention removed",
                      f"valid offsets are {s['start']} (log start)"], 1)
    yield ("replay-from-beyond-log-end", lambda s: ["replay", "t", "--from-offset", str(s["end"] + 1)],
           lambda s: [f"from offset {s['end'] + 1}", "beyond the log end"], 1)
    yield ("replay-to-negative", lambda s: ["replay", "t", "--from-offset", str(s["start"]), "--to-offset", "-5"],
           lambda s: ["--to-offset must be an integer >= 0, got -5"], 2)
    yield ("replay-to-non-numeric", lambda s: ["replay", "t", "--from-offset", str(s["start"]), "--to-offset", "ten"],
           lambda s: ["'--to-offset'", "integer"], 2)
    yield ("replay-to-before-from", lambda s: ["replay", "t", "--from-offset", str(s["end"]),
                                               "--to-offset", str(s["start"])],
           lambda s: [f"--to-offset {s['start']} is before --from-offset {s['end']}"], 2)
    yield ("replay-no-start", lambda s: ["replay", "t"], lambda s: ["give --from-offset N or --from-time"], 2)
    yield ("replay-partition-99", lambda s: ["replay", "t", "--from-offset", "0", "--partition", "99"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("reset-to-offset-negative", lambda s: ["groups", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1",
                                                  "--execute"],
           lambda s: ["--to-offset must be 0 or more, got -1"], 2)
    yield ("reset-to-offset-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t",
                                                     "--to-offset", "x1", "--execute"],
           lambda s: ["'--to-offset'", "integer"], 2)
    yield ("reset-shift-by-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t",
                                                    "--shift-by", "--3", "--execute"],
           lambda s: ["'--shift-by'", "integer"], 2)
    yield ("reset-two-specs", lambda s: ["groups", "reset-offsets", "g", "--topic", "t", "--to-earliest",
                                         "--to-latest", "--execute"],
           lambda s: ["give exactly one of"], 2)
    yield ("reset-partition-99", lambda s: ["groups", "reset-offsets", "g", "--topic", "t:99", "--to-earliest",
                                            "--execute"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("reset-partition-non-numeric", lambda s: ["groups", "reset-offsets", "g", "--topic", "t:0,x",
                                                     "--to-earliest", "--execute"],
           lambda s: ["--topic 't:0,x': partitions must be integers"], 2)
    yield ("reset-shift-without-commit", lambda s: ["groups", "reset-offsets", "fresh", "--topic", "t",
                                                    "--shift-by", "1", "--execute"],
           lambda s: ["--shift-by needs a committed offset", "'fresh'", "t-0"], 1)
    yield ("publish-partition-99", lambda s: ["publish", "t", "--partition", "99"],
           lambda s: ["partition 99 does not exist"], 1)
    yield ("publish-partition-negative", lambda s: ["publish", "t", "--partition", "-1"],
           lambda s: ["partition -1 does not exist"], 1)
    yield ("publish-fsync-unknown", lambda s: ["publish", "t", "--fsync", "sometimes"],
           lambda s: ["fsync", "'sometimes'"], 2)


OFFSET_CASES = {c[0]: c[1:] for c in _offset_cases()}


@pytest.mark.parametrize("case", list(OFFSET_CASES))
def test_bad_offsets_and_partitions(box, span, case):
    argv, needles, code = OFFSET_CASES[case]
    refused(box, *argv(span), needles=tuple(needles(span)), code=code, input=b'{"n": 1}\n')


@pytest.mark.parametrize("spec", [["--to-offset", I64], ["--to-offset", "0"], ["--shift-by", I64],
                                  ["--shift-by", "-" + I64]],
                         ids=["to-offset-2^63", "to-offset-below-log-start", "shift-by-2^63", "shift-by-minus-2^63"])
def test_reset_offsets_out_of_range_is_clamped_with_a_warning_as_in_kafka(box, span, spec):
    # kafka-consumer-groups clamps a reset target into [log start, log end] and says so; so does
    # logbroker. The dry run changes nothing; --execute stores the clamped offset, never the asked one.
    done = box.run("groups", "reset-offsets", "g", "--topic", "t", *spec)
    err = done.stderr.decode()
    assert done.returncode == 0 and "Traceback" not in err, err
    assert f"is outside [{span['start']}, {span['end']}]" in err and "for t-0" in err
    box.assert_unchanged()
    done = box.run("groups", "reset-offsets", "g", "--topic", "t", *spec, "--execute")
    assert done.returncode == 0, done.stderr
    committed = admin.describe_group(str(box.data), "g")[0].current_offset
    assert committed in (span["start"], span["end"])


def test_replay_to_offset_beyond_the_log_end_stops_at_the_end(box, span):
    # Documented: `to` past the high watermark stops there (the range is clamped, not refused).
    done = box.run("replay", "t", "--from-offset", str(span["end"] - 2), "--to-offset", I64, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ['{"n":28}', '{"n":29}']
    box.assert_unchanged()


# -- timestamps and durations ------------------------------------------------------------------------

TIME_CASES = {
    "consume-from-time-word": (["consume", "t", "--from-time", "yesterday"], "date-time 'yesterday'"),
    "consume-from-time-month-13": (["consume", "t", "--from-time", "2025-13-01T00:00:00"], "'2025-13-01T00:00:00'"),
    "replay-from-time-feb-30": (["replay", "t", "--from-time", "2025-02-30"], "date-time '2025-02-30'"),
    "replay-to-time-empty": (["replay", "t", "--from-offset", "10", "--to-time", ""], "date-time ''"),
    "replay-to-time-hour-25": (["replay", "t", "--from-offset", "10", "--to-time", "2025-11-27T25:00:00Z"],
                               "'2025-11-27T25:00:00Z'"),
    "reset-to-datetime-word": (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "now"],
                               "date-time 'now'"),
    "reset-to-datetime-bad-offset": (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime",
                                      "2025-11-27T08:00:00+25:00"], "'2025-11-27T08:00:00+25:00'"),
    "reset-by-duration-1h": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "1h"],
                             "duration '1h'"),
    "reset-by-duration-PT": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "PT"],
                             "duration 'PT'"),
    "reset-by-duration-P1H": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "P1H"],
                              "duration 'P1H'"),
    "reset-by-duration-negative": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", "-PT1H"],
                                   "duration '-PT1H'"),
    "reset-by-duration-empty": (["groups", "reset-offsets", "g", "--topic", "t", "--by-duration", ""],
                                "duration ''"),
}


@pytest.mark.parametrize("case", list(TIME_CASES))
def test_bad_timestamps_and_durations(box, case):
    argv, needle = TIME_CASES[case]
    extra = {"groups": ["--execute"], "consume": ["--timeout-ms", "50"]}.get(argv[0], [])
    refused(box, *argv, *extra, needles=(needle,), code=2)
