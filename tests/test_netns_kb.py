"""kernel_db/netns.toml against this machine's kernel: fresh namespaces, values read inside them.

Every namespace here is created by the test (`ta-nskb-<random>`) and deleted by its fixture. The host's
values are only ever read; sysctls are written only inside the test's own namespaces. Because the root
namespace may not be changed, a namespace "A" stands in for a tuned creator: a namespace created from
inside A ("B", via `unshare --net`) shows what comes from the creator, what from the initial namespace
and what is compiled in.

A check is *discriminating* only where the two candidate answers differ (e.g. the host's value differs
from the compiled default); on an untuned host a fresh namespace matches both and proves little, which
the summary printed with `-s` says per key.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpaudit.kernel.netns import CHILD_EHASH, DEVCONF_MODE, EHASH, load_netns_db
from tcpaudit.kernel.release import parse_release
from tcpaudit.snapshot import Snapshot
from tests.netns import netns_unavailable

ROOT = Path(__file__).resolve().parents[1]
DB = load_netns_db()
RELEASE = parse_release(os.uname().release)

# Reads each named key from /proc/sys in the namespace the process runs in: value, or null when absent;
# plus whether the file is writable at all (mode bits: a 0444 sysctl refuses even root).
READER = r"""
import json, os, stat, sys
out = {}
for key in sys.argv[1:]:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as fh:
            value = " ".join(fh.read().split())
        mode = os.stat(path).st_mode
        out[key] = {"value": value, "writable": bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))}
    except FileNotFoundError:
        out[key] = None
    except OSError as exc:
        out[key] = {"error": str(exc)}
print(json.dumps(out))
"""

# Writes key=value pairs in the namespace it runs in (only ever run inside a test namespace).
WRITER = r"""
import sys
for pair in sys.argv[1:]:
    key, value = pair.split("=", 1)
    with open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
        fh.write(value)
"""


def _keys() -> list[str]:
    return sorted(DB.keys)


def _read_host(keys: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in keys:
        try:
            out[key] = " ".join(Path("/proc/sys", *key.split(".")).read_text().split())
        except OSError:
            out[key] = None
    return out


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:6]} exited {r.returncode}: {r.stderr.strip()[:400]}")
    return r.stdout


def _read_in(ns: str, keys: list[str], nested: bool = False) -> dict[str, dict | None]:
    argv = ["ip", "netns", "exec", ns]
    if nested:
        argv += ["unshare", "--net"]
    return json.loads(_run([*argv, sys.executable, "-c", READER, *keys]))


def _write_in(ns: str, values: dict[str, str]) -> None:
    _run(["ip", "netns", "exec", ns, sys.executable, "-c", WRITER, *(f"{k}={v}" for k, v in values.items())])


@pytest.fixture
def fresh_netns() -> Iterator[str]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    if shutil_which("unshare") is None:
        pytest.skip("util-linux `unshare` is not installed")
    name = f"ta-nskb-{secrets.token_hex(4)}"
    _run(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def shutil_which(cmd: str) -> str | None:
    import shutil

    return shutil.which(cmd)


def _compiled_default(key: str) -> str | None:
    from tcpaudit.kernel.db import load_kernel_db

    fact = load_kernel_db().sysctls.get(key)
    entry = fact.default_entry(RELEASE) if fact is not None else None
    return entry.value if entry is not None and not entry.computed else None


def _value(entry: dict | None) -> str | None:
    return entry.get("value") if isinstance(entry, dict) else None


def test_every_rule_key_has_a_netns_fact() -> None:
    """Each sysctl the rules read (kernel_db/sysctls.toml) says what a new namespace gets."""
    from tcpaudit.kernel.db import load_kernel_db

    missing = sorted(set(load_kernel_db().sysctls) - set(DB.keys))
    assert not missing, f"kernel_db/netns.toml lacks {missing}"


def test_per_namespace_agrees_with_sysctls_toml() -> None:
    """netns.toml's global/per-namespace split never contradicts sysctls.toml's per_netns table."""
    from tcpaudit.kernel.db import load_kernel_db

    kdb = load_kernel_db()
    clashes = []
    for name, entry in DB.keys.items():
        fact = kdb.sysctls.get(name)
        if fact is None:
            continue
        for rng in entry.new_netns:
            for probe in {rng.since, *(r.until for r in entry.new_netns if r.until)}:
                release = parse_release(probe)
                if not rng.contains(release):
                    continue
                theirs = fact.per_netns_in(release)
                if theirs is not None and theirs != rng.per_namespace:
                    clashes.append(f"{name} at {probe}: netns.toml {rng.kind}, sysctls.toml per_netns={theirs}")
    assert not clashes, clashes


def test_fresh_namespace_matches_the_kb_on_this_kernel(fresh_netns: str) -> None:
    keys = _keys()
    host = _read_host([*keys, EHASH, CHILD_EHASH, DEVCONF_MODE])
    inside = _read_in(fresh_netns, [*keys, EHASH])
    ns_values = {k: v for k, v in ((k, _value(e)) for k, e in inside.items()) if v is not None}
    host_values = {k: v for k, v in host.items() if v is not None}
    checked, discriminating, skipped, wrong = [], [], [], []
    for key in keys:
        fact = DB.fact(key, RELEASE)
        if fact is None:
            skipped.append(f"{key}: no fact for {RELEASE.raw}")
            continue
        if host[key] is None:
            skipped.append(f"{key}: absent on the host (module not loaded or not on this kernel)")
            continue
        got = inside.get(key)
        if fact.kind == "global":
            if fact.visible == "absent":
                ok = got is None
                what = "absent in the namespace"
            else:
                ok = got is not None and _value(got) == host[key] and not got.get("writable")
                what = f"read-only host value {host[key]!r}"
            checked.append(key)
            if not ok:
                wrong.append(f"{key}: KB says {what}, the namespace shows {got!r}")
            continue
        if fact.kind == "state":
            skipped.append(f"{key}: a counter")
            continue
        exp = DB.expect(key, RELEASE, host_values, ns_values)
        assert exp is not None
        if exp.value is None:
            skipped.append(f"{key}: {exp.reason or 'not computable'}")
            continue
        checked.append(key)
        if _value(got) != exp.value:
            wrong.append(f"{key}: KB predicts {exp.value!r} ({fact.describe()}), the namespace has {_value(got)!r}")
        # the check tells the candidates apart only where they differ: host value vs compiled default
        if fact.kind in ("default", "derived") and host[key] != exp.value:
            discriminating.append(key)
        elif fact.kind == "copy_init_net":
            compiled = _compiled_default(key)
            if compiled is not None and compiled != host[key]:
                discriminating.append(key)
    copied = {k: host[k] for k in checked if getattr(DB.fact(k, RELEASE), "kind", None) == "copy_init_net"}
    print(
        f"\n{RELEASE.raw}: {len(checked)} keys checked in a fresh namespace, {len(discriminating)} discriminating "
        f"({', '.join(discriminating) or 'none'}); copied from the host: {copied}; skipped: {skipped}"
    )
    assert checked, "no key could be checked"
    assert not wrong, wrong


def test_nested_namespace_shows_creator_vs_init_net(fresh_netns: str) -> None:
    """Tune namespace A, create B from inside A: compiled defaults and init_net copies do not come from A;
    the hash-derived TIME-WAIT cap and SYN backlog do (tcp_child_ehash_entries, 6.1+)."""
    host = _read_host([*DB.keys, EHASH, CHILD_EHASH, DEVCONF_MODE])
    tuned = {
        "net.ipv4.tcp_keepalive_time": "611",
        "net.ipv4.tcp_fin_timeout": "17",
        "net.core.somaxconn": "777",
        "net.ipv4.ip_local_port_range": "20000 40000",
        "net.ipv4.tcp_rmem": "4096 65536 1048577",
    }
    child_fact = DB.fact("net.ipv4.tcp_max_tw_buckets", RELEASE)
    derived = child_fact is not None and child_fact.kind == "derived" and host.get(CHILD_EHASH) is not None
    if derived:
        tuned[CHILD_EHASH] = "1000"  # rounded up to 1024 by the kernel
    tuned = {k: v for k, v in tuned.items() if host.get(k) is not None}
    _write_in(fresh_netns, tuned)
    in_a = _read_in(fresh_netns, list(tuned))
    assert {k: _value(v) for k, v in in_a.items()} == tuned, "the writes inside namespace A did not take"
    keys = [*tuned, "net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_max_syn_backlog", EHASH]
    in_b = {k: _value(v) for k, v in _read_in(fresh_netns, keys, nested=True).items()}
    problems = []
    for key, a_value in tuned.items():
        if key == CHILD_EHASH:
            continue
        fact = DB.fact(key, RELEASE)
        if fact is None:
            continue
        if fact.kind == "default":
            if in_b[key] != fact.value:
                problems.append(f"{key}: B has {in_b[key]!r}, KB says compiled default {fact.value!r} (A: {a_value!r})")
        elif fact.kind == "copy_init_net":
            if in_b[key] != host[key]:
                problems.append(f"{key}: B has {in_b[key]!r}, KB says the host's {host[key]!r} (A: {a_value!r})")
        if in_b[key] == a_value:
            problems.append(f"{key}: B inherited A's value {a_value!r}")
    if derived:
        # B's hash is its own (positive size), sized from A's tcp_child_ehash_entries
        assert in_b[EHASH] == "1024", f"B's tcp_ehash_entries is {in_b[EHASH]!r}"
        for key in ("net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_max_syn_backlog"):
            from_creator = DB.expect(key, RELEASE, {CHILD_EHASH: tuned[CHILD_EHASH]})
            from_own = DB.expect(key, RELEASE, {}, {EHASH: in_b[EHASH] or ""})
            assert from_creator is not None and from_own is not None
            if not in_b[key] == from_creator.value == from_own.value:
                problems.append(
                    f"{key}: B has {in_b[key]!r}, KB predicts {from_creator.value!r} from A's child setting "
                    f"and {from_own.value!r} from B's own hash"
                )
    assert not problems, problems


def test_ns001_fires_only_where_the_namespace_really_runs_the_default(fresh_netns: str) -> None:
    """NS001 on real values: A (tuned) stands in for the host, B is created from A, C is a pod that set the
    same keepalive itself. B is reported for the keys it really runs at the default; C is not."""
    from tcpaudit.audit import facts_for
    from tcpaudit.context import ContextOptions, resolve_context
    from tcpaudit.model import NetnsInfo, Outcome
    from tcpaudit.rules.engine import catalogue, run_rules

    keys = sorted(DB.keys)
    tuned = {"net.ipv4.tcp_keepalive_time": "600", "net.core.somaxconn": "8192"}
    _write_in(fresh_netns, tuned)
    a = {k: v for k, v in ((k, _value(e)) for k, e in _read_in(fresh_netns, [*keys, EHASH]).items()) if v is not None}
    b = {k: v for k, v in ((k, _value(e)) for k, e in _read_in(fresh_netns, [*keys, EHASH], True).items()) if v}
    rule = [r for r in catalogue() if r.meta.id == "NS001"]

    def run(values: dict[str, str], name: str) -> tuple[Outcome, list]:
        snap = Snapshot.model_validate(
            {
                "hostname": "this-host",
                "collected_at": "2026-01-01T00:00:00Z",
                "source": "local",
                "kernel": {"release": RELEASE.raw},
                "sysctls": values,
                "sysctl_roots": ["net.ipv4", "net.core"],
                "netns": NetnsInfo(inode=1, name=name, name_source="bind-mount").model_dump(),
                "init_net_sysctls": {k: a[k] for k in keys if k in a},
            }
        )
        facts = facts_for(snap, resolve_context(ContextOptions.model_validate({}), snap))
        findings, results = run_rules(facts, name, rules=rule)
        return results[0].outcome, findings

    outcome_b, findings_b = run(b, "B")
    if DB.fact("net.ipv4.tcp_keepalive_time", RELEASE) is None:
        pytest.skip(f"no fact for {RELEASE.raw}")
    assert outcome_b is Outcome.fail
    lost = {row["key"]: row for row in findings_b[0].evidence["not_inherited"]}
    assert set(tuned) <= set(lost), lost
    for key in tuned:
        assert lost[key]["namespace"] == b[key]  # the value read inside B, not an assumption
        assert lost[key]["host"] == tuned[key]
    assert set(lost) <= set(tuned), f"reported keys A did not tune: {set(lost) - set(tuned)}"
    # C: a pod that applied the node's keepalive itself -> only somaxconn is lost
    c = dict(b, **{"net.ipv4.tcp_keepalive_time": "600"})
    outcome_c, findings_c = run(c, "C")
    assert outcome_c is Outcome.fail
    assert [r["key"] for r in findings_c[0].evidence["not_inherited"]] == ["net.core.somaxconn"]
    # D: the pod matches A everywhere -> pass
    outcome_d, _ = run(dict(b, **tuned), "D")
    assert outcome_d is Outcome.passed


def test_readme_inheritance_table_is_current() -> None:
    from tcpaudit.kernel.netns import inheritance_table, readme_with_table

    readme = (ROOT / "kernel_db" / "README.md").read_text()
    assert readme == readme_with_table(readme, inheritance_table()), (
        "kernel_db/README.md's inheritance table is stale: run python -m tcpaudit.kernel.netns --write"
    )


@pytest.mark.parametrize(
    "body,message",
    [
        (
            '["net.ipv4.x"]\nsummary = "a key"\n[["net.ipv4.x".new_netns]]\nsince = "4.5"\nkind = "default"\n'
            'confidence = "high"\nsource.commit = "0123456789ab"\n',
            "needs a value",
        ),
        (
            '["net.ipv4.x"]\nsummary = "a key"\n[["net.ipv4.x".new_netns]]\nsince = "4.5"\nkind = "global"\n'
            'confidence = "high"\nsource.commit = "0123456789ab"\n',
            "visible",
        ),
        (
            '["net.ipv4.x"]\nsummary = "a key"\n[["net.ipv4.x".new_netns]]\nsince = "4.5"\nkind = "default"\n'
            'value = "1"\nconfidence = "high"\n',
            "source",
        ),
        (
            '["net.ipv4.x"]\nsummary = "a key"\n[["net.ipv4.x".new_netns]]\nsince = "4.5"\nkind = "default"\n'
            'value = "1"\nconfidence = "high"\nsource.commit = "XYZ"\n',
            "hex",
        ),
        (
            '["net.ipv4.x"]\nsummary = "a key"\n[["net.ipv4.x".new_netns]]\nsince = "4.5"\nkind = "default"\n'
            'value = "1"\nconfidence = "high"\nsource.commit = "0123456789ab"\n'
            '[["net.ipv4.x".new_netns]]\nsince = "5.0"\nkind = "default"\nvalue = "2"\nconfidence = "high"\n'
            'source.commit = "0123456789ab"\n',
            "overlap",
        ),
        (
            '["tcp_sack"]\nsummary = "a key"\n[["tcp_sack".new_netns]]\nsince = "4.5"\nkind = "default"\n'
            'value = "1"\nconfidence = "high"\nsource.commit = "0123456789ab"\n',
            "fully qualified",
        ),
    ],
)
def test_loader_rejects_bad_entries(tmp_path: Path, body: str, message: str) -> None:
    from tcpaudit.kernel.db import KernelDBError

    (tmp_path / "netns.toml").write_text(body)
    with pytest.raises(KernelDBError) as exc:
        load_netns_db(tmp_path)
    assert "netns.toml" in str(exc.value) and message in str(exc.value)


def test_classify_and_expect_without_a_kernel() -> None:
    from tcpaudit.kernel.netns import classify

    assert classify("600", "7200", "7200") == "not_inherited"
    assert classify("600", "300", "7200") == "own_value"
    assert classify("7200", "7200", "7200") == "inherited"
    assert classify("600", "600", "7200") == "same_as_host"
    assert classify(None, "7200", "7200") == "unknown"
    old = parse_release("3.10.0-1160.el7.x86_64")
    assert DB.expect("net.ipv4.ip_local_port_range", old, {}) is None  # no fact: unknown, not a guess
    fact = DB.fact("net.ipv4.tcp_keepalive_time", old)
    assert fact is not None and fact.kind == "global"
    backport = DB.fact("net.ipv4.tcp_rmem", parse_release("4.14.165-103.209.amzn1.x86_64"))
    assert backport is not None and backport.kind == "copy_init_net"  # distro data point beats upstream 4.14
    upstream = DB.fact("net.ipv4.tcp_rmem", parse_release("4.14.165"))
    assert upstream is not None and upstream.kind == "global"
    devconf = DB.expect("net.ipv4.ip_forward", parse_release("6.8"), {"net.ipv4.ip_forward": "1", DEVCONF_MODE: "2"})
    assert devconf is not None and devconf.value == "0"
    devconf = DB.expect("net.ipv4.ip_forward", parse_release("6.8"), {"net.ipv4.ip_forward": "1", DEVCONF_MODE: "0"})
    assert devconf is not None and devconf.value == "1"


def _pod_snapshot(name: str, inode: int, keepalive: str, somaxconn: str = "4096") -> Snapshot:

    return Snapshot.model_validate(
        {
            "hostname": "node-1",
            "collected_at": "2026-01-01T00:00:00Z",
            "source": "local",
            "kernel": {"release": "6.1.0-18-amd64"},
            "sysctls": {
                "net.ipv4.tcp_keepalive_time": keepalive,
                "net.ipv4.tcp_keepalive_intvl": "75",
                "net.core.somaxconn": somaxconn,
            },
            "sysctl_roots": ["net.ipv4", "net.core"],
            "netns": {"inode": inode, "name": name, "name_source": "pod-log-dir", "pod": name},
            "init_net_sysctls": {
                "net.ipv4.tcp_keepalive_time": "200",
                "net.ipv4.tcp_keepalive_intvl": "75",
                "net.core.somaxconn": "65535",
            },
        }
    )


def test_group_ns001_one_entry_naming_the_namespaces() -> None:
    """Three pods lose the same tuning, one set its own keepalive: two groups, per-target findings kept."""
    from tcpaudit.audit import AuditOptions, audit_snapshot, build_report
    from tcpaudit.netns_view import group_ns001

    opts = AuditOptions.model_validate({"context": {"nat_idle_timeout": 240}})
    targets = [
        audit_snapshot(_pod_snapshot(f"shop/web-{i}", 4026532300 + i, "7200"), opts, name=f"shop/web-{i}")
        for i in range(3)
    ]
    targets.append(audit_snapshot(_pod_snapshot("shop/tuned", 4026532399, "150"), opts, name="shop/tuned"))
    report = build_report(targets)
    groups = group_ns001(report)
    assert report.extra["netns"]["ns001"] is groups
    assert [g["namespaces"] for g in groups] == [["shop/web-0", "shop/web-1", "shop/web-2"], ["shop/tuned"]]
    big = groups[0]
    assert big["keys"] == ["net.core.somaxconn", "net.ipv4.tcp_keepalive_time"]
    assert big["host_values"] == {"net.core.somaxconn": "65535", "net.ipv4.tcp_keepalive_time": "200"}
    assert big["ns_values"] == {"net.core.somaxconn": "4096", "net.ipv4.tcp_keepalive_time": "7200"}
    # what the default triggers there: keepalive 7200 behind the 240 s idle timeout is NAT001's input
    assert all("NAT001" in big["findings_there"][ns] for ns in big["namespaces"])
    assert groups[1]["keys"] == ["net.core.somaxconn"]
    assert groups[1]["own_values"]["shop/tuned"][0]["key"] == "net.ipv4.tcp_keepalive_time"
    # every target keeps its own NS001 finding
    assert sum(1 for t in report.targets for f in t.findings if f.rule == "NS001") == 4
    # build_report adds the view by itself for --all-netns reports (targets of kind netns)
    for t in targets:
        t.kind = "netns"
    assert build_report(targets).extra["netns"]["ns001"] == groups
    assert "netns" not in build_report(targets[:0]).extra


def _collect(ns: str, nested: bool = False) -> Snapshot:
    """The real collector (`tcpaudit snapshot`), run inside namespace `ns` (or one created from inside it)."""
    from tcpaudit.snapshot import load_snapshot_json

    argv = ["ip", "netns", "exec", ns, *(["unshare", "--net"] if nested else [])]
    return load_snapshot_json(_run([*argv, sys.executable, "-m", "tcpaudit", "snapshot", "-o", "-"]))


def test_ns001_on_snapshots_from_the_real_collector(fresh_netns: str) -> None:
    """End to end with the collector: A (tuned inside, standing in for the host) and B (created from A) are
    collected by `tcpaudit snapshot` inside them; B gets netns/init_net_sysctls as --all-netns sets them (the
    host's values of the keys the namespace shows) and NS001 names exactly the keys B runs at the default."""
    from tcpaudit.audit import AuditOptions, audit_snapshot
    from tcpaudit.model import NetnsInfo

    if DB.fact("net.ipv4.tcp_keepalive_time", RELEASE) is None:
        pytest.skip(f"no fact for {RELEASE.raw}")
    tuned = {"net.ipv4.tcp_keepalive_time": "300", "net.ipv4.ip_local_port_range": "10000 60999"}
    _write_in(fresh_netns, tuned)
    host_like = _collect(fresh_netns)
    pod = _collect(fresh_netns, nested=True)
    for key, value in tuned.items():
        assert host_like.sysctls[key] == value
    pod.netns = NetnsInfo(inode=2, name="pod-b", name_source="bind-mount")
    pod.init_net_sysctls = {k: host_like.sysctls[k] for k in pod.sysctls if k in host_like.sysctls}
    opts = AuditOptions.model_validate({"context": {"nat_idle_timeout": 240}})
    target = audit_snapshot(pod, opts, name="pod-b")
    (ns001,) = [f for f in target.findings if f.rule == "NS001"]
    lost = {r["key"]: r for r in ns001.evidence["not_inherited"]}
    assert set(lost) == set(tuned), lost
    assert lost["net.ipv4.tcp_keepalive_time"]["namespace"] == pod.sysctls["net.ipv4.tcp_keepalive_time"] == "7200"
    assert "NAT001" in lost["net.ipv4.tcp_keepalive_time"]["rules_reading_it"]
    assert any(f.rule == "NAT001" for f in target.findings)  # what the default triggers there


def test_compiled_defaults_agree_with_sysctls_toml() -> None:
    """A 'default' range's value is the upstream default sysctls.toml records for the same kernels."""
    from tcpaudit.kernel.db import load_kernel_db

    kdb = load_kernel_db()
    clashes = []
    for name, entry in DB.keys.items():
        fact = kdb.sysctls.get(name)
        if fact is None:
            continue
        bounds = {b for r in fact.defaults for b in (r.since, r.until) if b} | {
            b for r in entry.new_netns for b in (r.since, r.until) if b
        }
        for rng in entry.new_netns:
            if rng.kind != "default" or rng.value is None:
                continue
            for probe in bounds:
                release = parse_release(probe)
                if not rng.contains(release):
                    continue
                theirs = fact.default_entry(release)
                if theirs is not None and not theirs.computed and theirs.value != rng.value:
                    clashes.append(f"{name} at {probe}: netns.toml {rng.value!r}, sysctls.toml {theirs.value!r}")
    assert not clashes, clashes
