"""Fake K-pop merchandise orders ("KPop Demon Hunters" store), fast enough to load-test the broker.

Contract
--------
``generate_orders(n=None, seed=None) -> Iterator[dict]``
    Yields ``n`` orders (``n`` None or 0: endless). Each order is a new dict with, in this order:

    ``txid``           UUID version 4 string, e.g. ``"0b6f4b9e-5c1d-4f0a-9d55-3f3e1b2c4d5e"``
    ``item``           a catalogue item name, e.g. ``"HUNTR/X Lightstick"`` (see ``CATALOGUE``)
    ``name``           customer name, e.g. ``"Maria Lopez"``
    ``email``          customer e-mail, derived from the name, e.g. ``"maria.lopez84@gmail.com"``
    ``purchase_time``  ISO 8601 UTC with milliseconds, e.g. ``"2026-01-01T00:00:03.120Z"``
    ``address``        one-line postal address, e.g. ``"3362 Hubbard Trail, Port Wendy, NY 03482"``
    ``price``          unit price of the item in USD, a float with 2 decimals (the catalogue price)
    ``quantity``       int 1..5, mostly 1

    Purchase times never decrease: they start at ``SEEDED_START`` (2026-01-01T00:00:00Z) when a
    seed is given, else at the current time, and advance by exponentially distributed gaps
    (Poisson arrivals, ``MEAN_GAP_MS`` on average; equal consecutive times are possible).

    The same ``seed`` gives identical output -- UUIDs and times included -- in any process using the
    same Python and faker versions; ``seed=None`` draws from OS entropy.

``iter_order_lines(n=None, seed=None, rate=None) -> Iterator[bytes]``
    The same orders as compact JSON lines (orjson), each ending in ``b"\\n"``. With ``rate``
    (records per second, > 0) line ``i`` is released no earlier than ``start + i / rate`` on the
    ``time.monotonic`` clock, so the long-run average is ``rate`` without per-record sleep drift; a
    consumer that falls behind gets the late lines at once until it has caught up.

How it is fast: faker costs 60-150 us per call, so it is used only once per process, with a fixed
seed, to build pools (first names, last names, street names, towns). From those a pool of
``CUSTOMERS`` customers (name, matching e-mail, address) is assembled once -- the same customers
whatever the seed, the seed decides who buys what and when; each order then only draws from
the pools with a seeded ``random.Random``, formats the UUID from 128 random bits itself and
reformats the time only when its second changes. The first call in a process pays the pool build
(a fraction of a second); later calls reuse it. This module imports neither typer nor, until the
first order is generated, faker.
"""

from __future__ import annotations

import calendar
import functools
import math
import random
import re
import time
from typing import Iterator

import orjson

__all__ = [
    "CATALOGUE",
    "CUSTOMERS",
    "MEAN_GAP_MS",
    "SEEDED_START",
    "generate_orders",
    "iter_order_lines",
]

# (item, unit price in USD, relative popularity)
CATALOGUE: tuple[tuple[str, float, int], ...] = (
    ("HUNTR/X Lightstick", 49.99, 10),
    ("HUNTR/X Lightstick Battery Pack", 9.99, 4),
    ("Golden Album (Vinyl)", 34.99, 8),
    ("Golden Album (CD)", 19.99, 9),
    ("Golden Album (Cassette)", 14.99, 2),
    ("Soda Pop Single (CD)", 12.99, 6),
    ("Your Idol 7-inch Single (Vinyl)", 17.99, 4),
    ("Saja Boys Hoodie", 64.99, 7),
    ("Saja Boys Snapback", 26.99, 4),
    ("Saja Boys Photocard Binder", 24.99, 5),
    ("Saja Boys Acrylic Stand", 17.99, 4),
    ("Saja Boys Keychain", 9.99, 6),
    ("Jinu Photocard Set", 14.99, 6),
    ("HUNTR/X Takedown Tour T-Shirt", 29.99, 8),
    ("HUNTR/X Bomber Jacket", 89.99, 2),
    ("HUNTR/X Bucket Hat", 24.99, 3),
    ("HUNTR/X Tote Bag", 19.99, 4),
    ("Rumi Figure", 39.99, 5),
    ("Mira Figure", 39.99, 4),
    ("Zoey Figure", 39.99, 4),
    ("Rumi Sword Foam Replica", 54.99, 2),
    ("Mira Gok-do Foam Replica", 59.99, 1),
    ("Zoey Shinkal Knife Set (Foam)", 29.99, 2),
    ("Derpy Tiger Plush", 27.99, 9),
    ("Derpy Tiger Socks", 11.99, 5),
    ("Sussie Magpie Plush", 24.99, 6),
    ("Gwi-Ma Mask Replica", 44.99, 2),
    ("Honmoon Tapestry", 32.99, 3),
    ("Golden Enamel Pin Set", 16.99, 5),
    ("How It's Done Sticker Pack", 7.99, 7),
    ("KPop Demon Hunters Art Book", 42.99, 3),
    ("Demon Hunter Ramen Bowl", 22.99, 3),
    ("Golden Phone Case", 21.99, 4),
)

CUSTOMERS = 8192  # customers in the pool, each with a name, a matching e-mail and an address
MEAN_GAP_MS = 250.0  # mean time between two purchases
SEEDED_START = "2026-01-01T00:00:00Z"
_SEEDED_START_MS = calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000

_POOL_SEED = 20260101  # fixed: the pools are the same for every seed; the seed drives the draws
_FIRST_NAMES = 1024
_LAST_NAMES = 1024
_STREET_NAMES = 512
_TOWNS = 512
_ADDRESSES = 4096
_EMAIL_DOMAINS = (
    ("gmail.com", 40), ("yahoo.com", 12), ("hotmail.com", 10), ("outlook.com", 8),
    ("icloud.com", 8), ("naver.com", 6), ("proton.me", 3), ("example.com", 2),
)  # fmt: skip
_QUANTITY_WEIGHTS = ((1, 62), (2, 22), (3, 9), (4, 4), (5, 3))


def _weighted_table(pairs) -> tuple:
    """A lookup table in which each value appears as often as its weight: table[random index]."""
    return tuple(value for value, weight in pairs for _ in range(weight))


@functools.lru_cache(maxsize=1)
def _pools() -> tuple[tuple, tuple, tuple]:
    """(customers, item table, quantity table), built once per process with a fixed seed.

    faker supplies names, street names and towns (city, state, a ZIP code of that state), at
    ~60 us per call; house numbers, apartments and e-mail addresses are combined here.
    """
    from faker import Faker  # imported here: ~0.2 s, and only needed once

    fake = Faker("en_US")
    fake.seed_instance(_POOL_SEED)
    firsts = [fake.first_name() for _ in range(_FIRST_NAMES)]
    lasts = [fake.last_name() for _ in range(_LAST_NAMES)]
    streets = [fake.street_name() for _ in range(_STREET_NAMES)]
    towns = []  # "City, ST 12345"
    for _ in range(_TOWNS):
        state = fake.state_abbr(include_territories=False, include_freely_associated_states=False)
        towns.append(f"{fake.city()}, {state} {fake.zipcode_in_state(state)}")

    rng = random.Random(_POOL_SEED)
    choice, randrange = rng.choice, rng.randrange
    addresses = []
    for _ in range(_ADDRESSES):
        line = f"{randrange(1, 10 ** randrange(2, 6))} {choice(streets)}"
        if rng.random() < 0.3:
            line += f" {choice(('Apt.', 'Suite'))} {randrange(100, 1000)}"
        addresses.append(f"{line}, {choice(towns)}")

    # (display name, e-mail spelling): "O'Brien" is written "obrien" in an address
    def spelled(names: list[str]) -> list[tuple[str, str]]:
        return [(name, re.sub(r"[^a-z]", "", name.lower()) or "x") for name in names]

    firsts_, lasts_ = spelled(firsts), spelled(lasts)
    domains = _weighted_table(_EMAIL_DOMAINS)
    customers = []
    for _ in range(CUSTOMERS):
        (first, f), (last, l) = choice(firsts_), choice(lasts_)
        style = randrange(5)
        if style == 0:
            local = f"{f}.{l}"
        elif style == 1:
            local = f"{f}{l}{randrange(100)}"
        elif style == 2:
            local = f"{f[0]}{l}{randrange(1970, 2012)}"
        elif style == 3:
            local = f"{f}_{l}"
        else:
            local = f"{f}.{l}{randrange(10, 1000)}"
        customers.append((f"{first} {last}", f"{local}@{choice(domains)}", choice(addresses)))
    items = _weighted_table(((name, price), weight) for name, price, weight in CATALOGUE)
    return tuple(customers), items, _weighted_table(_QUANTITY_WEIGHTS)


def generate_orders(n: int | None = None, seed: int | None = None) -> Iterator[dict]:
    """Yield ``n`` orders (None or 0: endless); the same seed yields the same orders."""
    if n is not None and (type(n) is not int or n < 0):
        raise ValueError(f"n must be None or an int >= 0, got {n!r}")
    return _orders(n or -1, seed)


def _orders(remaining: int, seed: int | None) -> Iterator[dict]:
    customers, items, quantities = _pools()
    n_customers, n_items, n_quantities = len(customers), len(items), len(quantities)
    rng = random.Random(seed)
    rand = rng.random
    bits = rng.getrandbits
    log = math.log
    gmtime = time.gmtime
    strftime = time.strftime
    mean_gap = MEAN_GAP_MS
    # UUID version 4: version nibble 0100, variant bits 10, the other 122 bits random.
    uuid_clear = ~((0xF << 76) | (0x3 << 62))
    uuid_set = (0x4 << 76) | (0x2 << 62)

    t_ms = _SEEDED_START_MS if seed is not None else int(time.time() * 1000)
    second = -1
    prefix = ""
    while remaining:  # a negative count never reaches 0: endless
        remaining -= 1
        sec, ms = divmod(t_ms, 1000)
        if sec != second:
            second = sec
            prefix = strftime("%Y-%m-%dT%H:%M:%S.", gmtime(sec))
        h = ((bits(128) & uuid_clear) | uuid_set).to_bytes(16, "big").hex()
        name, email, address = customers[int(rand() * n_customers)]
        item, price = items[int(rand() * n_items)]
        yield {
            "txid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
            "item": item,
            "name": name,
            "email": email,
            "purchase_time": f"{prefix}{ms:03d}Z",
            "address": address,
            "price": price,
            "quantity": quantities[int(rand() * n_quantities)],
        }
        # Exponential gap (Poisson arrivals); 1 - random() is in (0, 1], so log() is defined.
        t_ms += int(-log(1.0 - rand()) * mean_gap)


def iter_order_lines(
    n: int | None = None, seed: int | None = None, rate: float | None = None
) -> Iterator[bytes]:
    """The orders of ``generate_orders(n, seed)`` as JSON lines, paced to ``rate`` per second."""
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf
    ):
        raise ValueError(f"rate must be None or a finite number > 0, got {rate!r}")
    orders = generate_orders(n, seed)  # validates n at the call, not at the first next()
    return _lines(orders) if rate is None else _paced_lines(orders, rate)


def _lines(orders: Iterator[dict]) -> Iterator[bytes]:
    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE
    for order in orders:
        yield dumps(order, option=option)


def _paced_lines(orders: Iterator[dict], rate: float) -> Iterator[bytes]:
    # Line i is due at start + i / rate: sleeping only until that deadline means time spent by the
    # consumer or by sleep() overshooting is absorbed instead of accumulating as drift.
    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE
    monotonic = time.monotonic
    sleep = time.sleep
    interval = 1.0 / rate
    start = monotonic()
    for i, order in enumerate(orders):
        line = dumps(order, option=option)
        wait = start + i * interval - monotonic()
        if wait > 0:
            sleep(wait)
        yield line
