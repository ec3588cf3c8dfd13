"""kernel_db/effects.toml: keys whose write is not a plain setting (real data, and the loader checks)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from tcpaudit.kernel.db import KernelDBError, load_kernel_db
from tcpaudit.kernel.effects import EFFECTS_FILE, load_effects_db
from tcpaudit.kernel.release import parse_release

EXPECTED = {
    "net.ipv4.route.flush": "trigger",
    "net.ipv6.route.flush": "trigger",
    "vm.drop_caches": "trigger",
    "vm.compact_memory": "trigger",
    "net.ipv4.tcp_low_latency": "no_effect",
    "net.nf_conntrack_max": "legacy_name",
    "net.netfilter.nf_conntrack_helper": "deprecated_value",
}


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / EFFECTS_FILE).write_text(text)
    return tmp_path


GOOD = """
["vm.example"]
kind = "trigger"
summary = "every write does something once and keeps nothing"
confidence = "low"
source.url = "https://example.org/"
"""


def test_shipped_table_loads_and_covers_the_known_keys() -> None:
    db = load_effects_db()
    assert {k: e.kind for k, e in db.effects.items() if k in EXPECTED} == EXPECTED
    assert load_effects_db() is db  # cached
    from tcpaudit.kernel.db import load_kernel_db

    kdb = load_kernel_db()  # rules get it through Facts.kdb, never by reading the file themselves
    assert kdb.effects is db and kdb.kubernetes is not None and kdb.kubernetes.safe
    assert EFFECTS_FILE in {p.name for p in resources.files("tcpaudit.kernel_db").iterdir()}


def test_every_entry_has_a_source_and_confidence() -> None:
    for effect in load_effects_db().effects.values():
        assert effect.source and effect.confidence in {"verified", "high", "low"}
        for r in effect.applies:
            assert r.source and r.confidence in {"verified", "high", "low"}


def test_legacy_names_point_at_a_known_sysctl() -> None:
    kdb = load_kernel_db()
    for effect in load_effects_db().effects.values():
        if effect.kind == "legacy_name":
            assert kdb.sysctl(effect.canonical or "") is not None, effect.name


def test_tcp_low_latency_is_a_no_op_from_4_14() -> None:
    e = load_effects_db().lookup("net.ipv4.tcp_low_latency")
    assert e is not None
    assert e.applies_in(parse_release("4.13.0")) is False
    assert e.applies_in(parse_release("4.14.0")) is True
    assert e.applies_in(parse_release("6.8.0")) is True
    assert e.applies_in(None) is None
    assert e.range_for(parse_release("5.4.0")).since == "4.14"  # type: ignore[union-attr]


def test_values_decide_whether_a_write_acts() -> None:
    db = load_effects_db()
    drop = db.lookup("vm.drop_caches")
    assert drop is not None and drop.acts_on("3") and drop.acts_on(" 1 ") and not drop.acts_on("4")
    flush = db.lookup("net.ipv4.route.flush")
    assert flush is not None and flush.acts_on("0") and flush.acts_on("anything")  # the value is not parsed
    helper = db.lookup("net.netfilter.nf_conntrack_helper")
    assert helper is not None and helper.acts_on("1") and not helper.acts_on("0") and helper.fix_value == "0"


def test_a_minimal_entry_loads(tmp_path: Path) -> None:
    db = load_effects_db(_write(tmp_path, GOOD))
    assert db.lookup("vm.example").applies_in(parse_release("5.4.0")) is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t.replace('source.url = "https://example.org/"\n', ""), "source"),
        (lambda t: t.replace('"trigger"', '"sometimes"'), "kind"),
        (lambda t: t.replace('["vm.example"]', '["drop_caches"]'), "fully qualified"),
        (lambda t: t.replace('"trigger"', '"legacy_name"'), "canonical"),
        (lambda t: t.replace('"trigger"', '"deprecated_value"'), "values"),
        (lambda t: t.replace('"trigger"', '"no_effect"') + 'values = ["1"]\n', "values"),
        (
            lambda t: (
                t + '[["vm.example".applies]]\nsince = "5.4"\nuntil = "4.9"\nconfidence = "low"\n'
                'source.commit = "0123456789ab"\n'
            ),
            "before until",
        ),
        (lambda t: t + 'source.commit = "not-a-hash"\n', "hex"),
        (lambda t: t + 'fix_value = "0"\n', "fix_value"),
    ],
)
def test_bad_entries_fail_naming_file_and_entry(tmp_path: Path, edit: Callable[[str], str], message: str) -> None:
    root = _write(tmp_path, edit(GOOD))
    with pytest.raises(KernelDBError) as info:
        load_effects_db(root)
    text = str(info.value)
    assert EFFECTS_FILE in text and message in text


def test_missing_or_empty_file_fails(tmp_path: Path) -> None:
    with pytest.raises(KernelDBError, match=EFFECTS_FILE):
        load_effects_db(tmp_path)
    with pytest.raises(KernelDBError, match="no entries"):
        load_effects_db(_write(tmp_path / "", "# nothing\n"))
