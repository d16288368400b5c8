"""The K-pop merchandise order generator: order shape, reproducibility, counts and pacing."""

import itertools
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from logbroker.tools.generator import (
    CATALOGUE,
    SEEDED_START,
    generate_orders,
    iter_order_lines,
)

FIELDS = ["txid", "item", "name", "email", "purchase_time", "address", "price", "quantity"]
ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PRICES = {name: price for name, price, _ in CATALOGUE}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_order_has_the_tutorial_fields_well_formed():
    for order in generate_orders(2000, seed=7):
        assert list(order) == FIELDS
        parsed = uuid.UUID(order["txid"])
        assert str(parsed) == order["txid"] and parsed.version == 4
        assert order["item"] in PRICES
        assert order["price"] == PRICES[order["item"]]
        assert isinstance(order["price"], float) and round(order["price"], 2) == order["price"]
        assert type(order["quantity"]) is int and 1 <= order["quantity"] <= 5
        assert order["name"].strip() and " " in order["name"]
        local, _, domain = order["email"].partition("@")
        assert local and "." in domain and "@" not in domain
        assert ISO_UTC_MS.match(order["purchase_time"]), order["purchase_time"]
        assert parse_time(order["purchase_time"]).tzinfo == timezone.utc
        assert order["address"] and "\n" not in order["address"]


def test_catalogue_has_about_thirty_priced_items():
    assert 25 <= len(CATALOGUE) <= 40
    assert len(PRICES) == len(CATALOGUE)  # names are unique
    assert all(price > 0 and round(price, 2) == price for price in PRICES.values())


def test_orders_draw_from_many_items_customers_and_quantities():
    orders = list(generate_orders(5000, seed=3))
    assert len({o["item"] for o in orders}) == len(CATALOGUE)
    assert len({o["name"] for o in orders}) > 1000
    assert len({o["address"] for o in orders}) > 1000
    assert {o["quantity"] for o in orders} == {1, 2, 3, 4, 5}
    assert len({o["txid"] for o in orders}) == 5000


def test_purchase_times_never_decrease_and_advance_realistically():
    times = [parse_time(o["purchase_time"]) for o in generate_orders(4000, seed=11)]
    assert times == sorted(times)
    span = (times[-1] - times[0]).total_seconds()
    assert 60 < span < 24 * 3600  # seconds to minutes between orders, not all at once


def test_seeded_times_start_at_the_fixed_epoch():
    first = next(generate_orders(1, seed=123))
    assert SEEDED_START == "2026-01-01T00:00:00Z"
    assert first["purchase_time"] == "2026-01-01T00:00:00.000Z"


def test_unseeded_times_start_now():
    before = datetime.now(timezone.utc)
    first = next(generate_orders(1))
    assert abs((parse_time(first["purchase_time"]) - before).total_seconds()) < 5


def test_same_seed_gives_identical_output():
    assert list(generate_orders(500, seed=42)) == list(generate_orders(500, seed=42))
    assert list(iter_order_lines(500, seed=42)) == list(iter_order_lines(500, seed=42))


def test_same_seed_gives_identical_output_in_another_process():
    here = list(iter_order_lines(50, seed=99))
    code = (
        "import sys; from logbroker.tools.generator import iter_order_lines; "
        "sys.stdout.buffer.write(b''.join(iter_order_lines(50, seed=99)))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, check=True
    ).stdout
    assert out.splitlines(keepends=True) == here


def test_different_seeds_differ():
    a = list(generate_orders(100, seed=1))
    b = list(generate_orders(100, seed=2))
    assert all(x["txid"] != y["txid"] for x, y in zip(a, b))
    assert [x["name"] for x in a] != [y["name"] for y in b]


def test_unseeded_runs_differ():
    assert next(generate_orders(1))["txid"] != next(generate_orders(1))["txid"]


@pytest.mark.parametrize("n", [1, 2, 17, 1000])
def test_n_orders_are_generated(n):
    assert sum(1 for _ in generate_orders(n, seed=5)) == n
    assert sum(1 for _ in iter_order_lines(n, seed=5)) == n


@pytest.mark.parametrize("n", [None, 0])
def test_n_none_or_zero_is_endless(n):
    assert len(list(itertools.islice(generate_orders(n, seed=5), 3000))) == 3000
    assert len(list(itertools.islice(iter_order_lines(n, seed=5), 3000))) == 3000


@pytest.mark.parametrize("n", [-1, 2.5, "10"])
def test_bad_count_is_refused_at_the_call(n):
    with pytest.raises(ValueError):
        generate_orders(n)
    with pytest.raises(ValueError):
        iter_order_lines(n)


@pytest.mark.parametrize("rate", [0, -5, float("inf"), float("nan"), "100", True])
def test_bad_rate_is_refused_at_the_call(rate):
    with pytest.raises(ValueError):
        iter_order_lines(10, seed=1, rate=rate)


def test_lines_are_json_of_the_same_orders_with_a_trailing_newline():
    lines = list(iter_order_lines(300, seed=8))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert [orjson.loads(line) for line in lines] == list(generate_orders(300, seed=8))


def test_rate_paces_output():
    start = time.monotonic()
    lines = list(iter_order_lines(50, seed=1, rate=500))
    elapsed = time.monotonic() - start
    assert len(lines) == 50
    assert elapsed >= 0.08  # 49 intervals of 2 ms; only a lower bound, no upper one


def test_rate_paces_the_same_lines_as_unpaced():
    assert list(iter_order_lines(20, seed=4, rate=10_000)) == list(iter_order_lines(20, seed=4))


def test_ten_thousand_orders_are_quick():
    list(generate_orders(1, seed=0))  # the one-time pool build is not what is measured here
    start = time.perf_counter()
    lines = list(iter_order_lines(10_000, seed=0))
    assert len(lines) == 10_000
    assert time.perf_counter() - start < 5  # ~0.1 s expected; generous for slow CI machines


def test_the_library_imports_neither_typer_nor_faker_eagerly():
    code = (
        "import sys, logbroker.tools.generator; "
        "assert 'typer' not in sys.modules, 'typer'; "
        "assert 'faker' not in sys.modules, 'faker'"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
