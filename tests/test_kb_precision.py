"""An inexact `since` (since_exact = false) never answers *present* before the first release the fact was seen on.

kernel_db/sysctls.toml: such ranges carry `verified` (the first release seen) and `verified_by` (where); between
`since` and `verified` the knowledge base answers unknown (None), never True.
"""

from __future__ import annotations

import pytest

from tcpaudit.kernel.db import load_kernel_db
from tcpaudit.kernel.release import parse_release

DB = load_kernel_db()
INEXACT = [
    (name, kind, e)
    for name, fact in DB.sysctls.items()
    for kind in ("exists", "per_netns")
    for e in getattr(fact, kind)
    if not e.since_exact
]


def test_every_inexact_range_names_its_first_verified_release() -> None:
    assert INEXACT
    missing = [f"{name} {kind} since {e.since}" for name, kind, e in INEXACT if not (e.verified and e.verified_by)]
    assert not missing, missing


@pytest.mark.parametrize(("name", "kind", "entry"), INEXACT, ids=[f"{n}-{k}-{e.since}" for n, k, e in INEXACT])
def test_unknown_before_verified_answered_from_it(name: str, kind: str, entry) -> None:
    fact = DB.sysctls[name]
    ask = fact.present_in if kind == "exists" else fact.per_netns_in
    since, verified = parse_release(entry.since), parse_release(entry.verified)
    if since < verified:
        assert ask(since) is None, f"{name}: {kind} answered for {entry.since}, before {entry.verified}"
    answer = ask(verified)
    if entry.until is None or verified < parse_release(entry.until):
        assert answer is (True if kind == "exists" else entry.value)


def test_ip_local_reserved_ports_is_not_present_on_2_6_32() -> None:
    """Seed: the 2.6-era 'since' once made 2.6.32 look like it had the key (upstream: 2.6.35, e3826f1e946e)."""
    fact = DB.sysctls["net.ipv4.ip_local_reserved_ports"]
    assert fact.present_in(parse_release("2.6.32")) is not True
    assert fact.present_in(parse_release("4.18.0")) is True
