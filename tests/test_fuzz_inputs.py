"""Fuzzing the file and stream inputs: snapshot JSON, collector dumps, .tcpaudit.toml (waivers included),
kernel releases, the lint parsers (sysctl.conf/sysctl.d, Kubernetes YAML, docker-compose, JSON, tuned,
Markdown), fleet inventories, destinations and ssh_config files (issue 8).

Each input either gives data or raises its typed error (SnapshotFileError, DumpError, ConfigError,
KernelReleaseError, InventoryError, DestinationError/SSHSetupError) as one clean line naming the input;
never another exception, never a hang, never a result out of proportion to the input. Where a parsed
input goes on to be audited (snapshots, dumps, configs, lint units), the audit and every reporter must
cope with it too. Budget as in test_fuzz_parsers.py (TCPAUDIT_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpaudit.audit import AuditOptions, audit_snapshot, build_report
from tcpaudit.collect.build import build_snapshot
from tcpaudit.collect.dump import DumpError, DumpReader, snapshot_from_dump
from tcpaudit.collect.raw import RawCapture
from tcpaudit.collect.ssh import (
    DestinationError,
    SSHCollector,
    SSHSettings,
    SSHSetupError,
    concrete_config_hosts,
    parse_destination,
)
from tcpaudit.config import ConfigError, load_config
from tcpaudit.fleet import InventoryError, parse_ansible_json, parse_host_list
from tcpaudit.kernel.release import KernelReleaseError, parse_release, parse_version
from tcpaudit.lint import lint_units, parse_text
from tcpaudit.loading import SnapshotFileError, parse_snapshot_bytes
from tcpaudit.reporters import FORMATS, render
from tcpaudit.sanitize import clean_text
from tcpaudit.snapshot import Source

from .test_fuzz_parsers import (
    BUSY,
    CORPUS,
    EXAMPLES,
    HOSTILE_TOKENS,
    NAT_RULES,
    OS_RELEASE,
    REPO,
    _grep_sample,
    check_error,
    cut_positions,
    from_bytes,
    fuzz_settings,
    run_parser,
    soup,
    time_limit,
)

NAME = "fuzz-file.json"
# Auditing and rendering a parsed input costs milliseconds, parsing microseconds: fewer of those examples.
AUDIT_EXAMPLES = max(20, EXAMPLES // 10)
TODAY = _dt.date(2026, 1, 1)
_HOST_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def audited_everywhere(snapshot) -> None:  # type: ignore[no-untyped-def]
    """Audit a snapshot and render it in every format: no exception, valid JSON/XML, a clean table."""
    target = audit_snapshot(snapshot, AuditOptions())
    report = build_report([target])
    for fmt in FORMATS:
        text = render(report, fmt)
        text.encode("utf-8")  # the CLI writes UTF-8: no lone surrogates may reach a reporter's output
        if fmt in ("json", "sarif"):
            json.loads(text)
        elif fmt == "junit":
            ET.fromstring(text)
        elif fmt in ("table", "markdown"):
            assert clean_text(text, keep_newlines=True) == text, f"{fmt}: raw control characters"


# ---- hostile JSON values ---------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(HOSTILE_TOKENS),
    st.sampled_from(
        [
            "ESTAB",
            "LISTEN",
            "TIME-WAIT",
            "net.ipv4.tcp_tw_recycle",
            "1 2",
            "32768 60999",
            "-1",
            "2026-01-01T00:00:00Z",
            "ssh",
            "file",
            "local",
            "missing",
            "permission_denied",
        ]
    ),
)
json_values = st.recursive(
    _scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=12), kids, max_size=4)),
    max_leaves=12,
)


def _paths(obj: object, out: list, depth: int = 0) -> list:
    """(container, key) for every slot of a decoded JSON document."""
    if depth > 12:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((obj, k))
            _paths(v, out, depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            out.append((obj, i))
            _paths(v, out, depth + 1)
    return out


@st.composite
def mutated_json(draw: st.DrawFn, samples: tuple[bytes, ...]) -> bytes:
    """A real snapshot with values replaced by hostile ones, keys deleted or duplicated, socket columns
    of unequal length, then maybe serialised with NaN/Infinity, truncated or garbled."""
    doc = json.loads(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        slots = _paths(doc, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "grow"]))
        if op == "replace":
            container[key] = draw(json_values)
        elif op == "delete":
            del container[key]
        elif op == "duplicate" and isinstance(container, list):
            container.insert(key, container[key])
        elif op == "grow" and isinstance(container[key], list):
            container[key] = container[key] * draw(st.integers(2, 40))
        elif op == "grow" and isinstance(container[key], str):
            container[key] = container[key] * draw(st.integers(2, 400))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):  # a duplicated key, which json.dumps cannot write
        i = text.find("{")
        text = text[: i + 1] + f'"hostname": {json.dumps(draw(st.text(max_size=20)))}, ' + text[i + 1 :]
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 6)) == 0:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    return data


# ---- samples ---------------------------------------------------------------------------------------------
def frame(name: str, text: str) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return f"@@tcpaudit-begin {name}\n" + "".join(f"|{line}\n" for line in lines) + f"@@tcpaudit-end {name} rc=0\n"


@functools.lru_cache(maxsize=1)
def fixture_dump() -> bytes:
    """A complete collector dump made of the real captures in fixtures/ (the same on every machine)."""
    items = [
        ("hostname", "busy-netns\n"),
        ("osrelease", "6.18.0-1-amd64\n"),
        ("os-release", OS_RELEASE),
        ("uptime", "35536.62 69710.43\n"),
        ("netstat", (BUSY / "netstat").read_text()),
        ("snmp", (BUSY / "snmp").read_text()),
        ("sockstat", (BUSY / "sockstat").read_text()),
        ("sockstat6", (BUSY / "sockstat6").read_text()),
        ("nf_conntrack_stat", (BUSY / "stat_nf_conntrack").read_text()),
        ("cgroup", "0::/kubepods/besteffort/pod1\n"),
        ("dmi.sys_vendor", "Amazon EC2\n"),
        ("sysctls", _grep_sample()),
        ("ss", (BUSY / "ss-tanoeH.txt").read_text()),
        ("ss-detail", (BUSY / "ss-tinH-established.txt").read_text()),
        ("iptables-nat", NAT_RULES),
    ]
    text = "@@tcpaudit-collector 1\n" + "".join(frame(n, t) for n, t in items)
    text += "@@tcpaudit-gap dmi.product_name missing /sys/class/dmi/id/product_name: No such file or directory\n"
    return (text + "@@tcpaudit-done\n").encode()


@functools.lru_cache(maxsize=1)
def real_dump() -> bytes:
    """This machine's collector output (over 100 KB on a busy host: used whole, not mutated per example)."""
    p = subprocess.run(
        ["sh", "-s"], stdin=open(REPO / "tcpaudit" / "collect" / "collector.sh", "rb"), capture_output=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


@functools.lru_cache(maxsize=1)
def snapshot_samples() -> tuple[bytes, ...]:
    out = [q.read_bytes() for q in sorted((REPO / "fixtures" / "snapshots").glob("*.json"))]
    out.append(snapshot_from_dump(fixture_dump(), "fixture").model_dump_json().encode())
    return tuple(out)


# ---- snapshot JSON ---------------------------------------------------------------------------------------
def snapshot_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.deferred(lambda: mutated_json(snapshot_samples())),
        st.binary(max_size=400),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(
            [
                b"{" * 100_000,
                b"[" * 100_000,
                b'{"hostname": ' + b"9" * 5000 + b"}",
                b'{"schema_version": 99999999999999999999999}',
                b"\xef\xbb\xbf{}",
                b"{}" * 1000,
                b'{"hostname":"\\ud800"}',
                b"\x00" * 1000,
            ]
        ),
    )


def _load_snapshot(data: bytes):  # type: ignore[no-untyped-def]
    return run_parser(lambda: parse_snapshot_bytes(data, NAME), len(data), (SnapshotFileError,), NAME)


@fuzz_settings()
@given(data=snapshot_inputs())
def test_snapshot_json_gives_a_snapshot_or_a_snapshot_file_error(data: bytes) -> None:
    _load_snapshot(data)


@fuzz_settings(AUDIT_EXAMPLES)
@given(data=st.deferred(lambda: mutated_json(snapshot_samples())))
def test_any_snapshot_that_loads_can_be_audited_and_rendered(data: bytes) -> None:
    snap = _load_snapshot(data)
    if snap is not None:
        with time_limit(60):
            audited_everywhere(snap)


def test_snapshot_truncated_at_every_position() -> None:
    for sample in snapshot_samples():
        for cut in cut_positions(sample.decode(), limit=max(EXAMPLES, 600)):
            _load_snapshot(sample[:cut])


# Numbers a kernel cannot report: NaN and infinities (Python's json writes them), floats that overflow to
# inf, integers beyond 64 bits. They used to load and then crash rules (a "rule error" finding, exit 1).
HOSTILE_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999999",
    "-1e999999",
    str(10**400),
    str(-(10**400)),
    str(2**64),
    str(-(2**63) - 1),
]
IN_RANGE_NUMBERS = [0, 1, 2**64 - 1, -(2**63), 65535, 1e-300]


def _numeric_leaves(doc: object, path: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    """The path of every number in a snapshot document: the first row of each list, the first three
    counters of each counter group."""
    if isinstance(doc, bool):
        return []
    if isinstance(doc, (int, float)):
        return [path]
    out: list[tuple] = []  # type: ignore[type-arg]
    if isinstance(doc, dict):
        items = list(doc.items())
        if "counters" in path[-3:-1]:  # counters.<table>.<group>: hundreds of names of one type
            items = items[:3]
        for k, v in items:
            out += _numeric_leaves(v, (*path, k))
    elif isinstance(doc, list) and doc:
        out += _numeric_leaves(doc[0], (*path, 0))
    return out


def _with(doc: object, path: tuple, value: object) -> object:  # type: ignore[type-arg]
    doc = json.loads(json.dumps(doc))
    slot = doc
    for k in path[:-1]:
        slot = slot[k]  # type: ignore[index]
    slot[path[-1]] = value  # type: ignore[index]
    return doc


def _number_samples() -> list[dict]:  # type: ignore[type-arg]
    """The snapshot samples, and one with an earlier counter sample (`previous`, for rates)."""
    docs = [json.loads(s) for s in snapshot_samples()]
    rich = max(docs, key=lambda d: len(_numeric_leaves(d)))
    docs.append(
        {
            **rich,
            "previous": {
                "interval_s": 10.0,
                "counters": rich["counters"],
                "conntrack_stats_per_cpu": rich["conntrack"]["stats_per_cpu"],
            },
        }
    )
    return docs


def test_numbers_no_kernel_reports_are_refused_naming_the_field() -> None:
    """Every number in a snapshot file is bounded: NaN, Infinity, 1e999999 and integers beyond 64 bits are a
    SnapshotFileError that names the file and the field path, never a snapshot the rules then choke on."""
    checked = 0
    for doc in _number_samples():
        for path in _numeric_leaves(doc):
            where = ".".join(map(str, path))
            original = _with(doc, path, "@@number@@")
            for raw in HOSTILE_NUMBERS:
                slot = doc
                for k in path:
                    slot = slot[k]  # type: ignore[index]
                if raw == str(2**64) and isinstance(slot, float):
                    continue  # as a float 2**64 rounds to float(2**64 - 1): in range
                data = json.dumps(original).replace('"@@number@@"', raw).encode()
                with pytest.raises(SnapshotFileError) as info:
                    parse_snapshot_bytes(data, NAME)
                check_error(info.value, NAME)
                assert where in str(info.value), (raw, str(info.value))
                checked += 1
    assert checked > 1000


def test_numbers_in_range_load_and_no_rule_errs_on_them() -> None:
    """The bounds are ones the rules cope with: a field at its limit audits with no rule error."""
    opts = AuditOptions()
    for doc in _number_samples()[-1:]:
        for path in _numeric_leaves(doc):
            for value in IN_RANGE_NUMBERS:
                try:
                    snap = parse_snapshot_bytes(json.dumps(_with(doc, path, value)).encode(), NAME)
                except SnapshotFileError:
                    continue  # out of this field's range (a port above 65535, a negative queue)
                errors = [c for c in audit_snapshot(snap, opts).checks if c.outcome.value == "error"]
                assert not errors, (path, value, errors)


def test_snapshot_with_a_utf8_bom_loads() -> None:
    sample = snapshot_samples()[-1]
    assert parse_snapshot_bytes(b"\xef\xbb\xbf" + sample, NAME) == parse_snapshot_bytes(sample, NAME)
    with pytest.raises(SnapshotFileError, match="empty file"):
        parse_snapshot_bytes(b"\xef\xbb\xbf\n", NAME)


def test_schema_version_is_a_json_integer() -> None:
    doc = json.loads(snapshot_samples()[-1])
    for bad in ("1", 1.0, True, 0, -1):
        with pytest.raises(SnapshotFileError, match="schema_version"):
            parse_snapshot_bytes(json.dumps({**doc, "schema_version": bad}).encode(), NAME)


# ---- collector dumps -------------------------------------------------------------------------------------
_ITEM_NAMES = [
    "hostname",
    "osrelease",
    "os-release",
    "uptime",
    "netstat",
    "snmp",
    "sockstat",
    "ss",
    "ss-detail",
    "sysctls",
    "proc-net-tcp",
    "proc-net-tcp6",
    "iptables-nat",
    "nf_conntrack_stat",
    "cgroup",
    "nope",
    "../../etc/passwd",
    "sysctl:net.ipv4.x",
    "",
]
_MARKERS = st.one_of(
    st.tuples(
        st.sampled_from(["begin", "end", "stderr", "gap", "done", "collector", "x", ""]),
        st.sampled_from(_ITEM_NAMES),
        st.sampled_from(["", " rc=0", " rc=1", " rc=999", " rc=-1", " missing detail", " exploded x"]),
    ).map(lambda t: f"@@tcpaudit-{t[0]} {t[1]}{t[2]}".rstrip()),
    st.just("@@tcpaudit-collector 1"),
)


@st.composite
def mutated_dump(draw: st.DrawFn) -> bytes:
    """A real dump with hostile content inside its frames (what parsers see), markers added, dropped or
    moved (what the frame reader sees), a preamble, CRLF line ends, truncation or raw bytes."""
    lines = fixture_dump().decode().split("\n")
    vocab = sorted({w for ln in lines[:400] for w in ln[1:].split()})[:300] + HOSTILE_TOKENS
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["content", "content", "content", "marker", "drop", "dup", "swap", "repeat"]))
        if op == "content":  # framing stays valid: the item parsers get the hostile text
            content = "|" + draw(soup(vocab)).replace("\n", " ")
            if lines[i].startswith("|"):
                lines[i] = content
            elif lines[i].startswith("@@tcpaudit-begin"):
                lines.insert(i + 1, content)
        elif op == "marker":
            lines.insert(i, draw(_MARKERS))
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines[i : i + 1] = [lines[i]] * draw(st.integers(2, 200))
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from([b"Last login: never\n", b"\x1b[2J", b"\r\n" * 3])) + data
    if draw(st.integers(0, 5)) == 0:
        data = data.replace(b"\n", b"\r\n")
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def dump_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_dump(), st.binary(max_size=300).map(lambda b: b"@@tcpaudit-collector 1\n" + b), st.binary(max_size=300)
    )


@fuzz_settings()
@given(data=dump_inputs(), chunk=st.integers(1, 5000))
def test_collector_dump_gives_a_snapshot_or_a_dump_error(data: bytes, chunk: int) -> None:
    run_parser(lambda: snapshot_from_dump(data, NAME, Source.ssh), len(data), (DumpError,), None)
    reader = DumpReader(max_bytes=1 << 20, max_line=4096)

    def stream() -> bytes:
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])
        return reader.data()

    streamed = run_parser(stream, len(data), (DumpError,), None)
    assert streamed is None or streamed == data


@fuzz_settings(AUDIT_EXAMPLES)
@given(data=mutated_dump())
def test_any_dump_that_loads_can_be_audited_and_rendered(data: bytes) -> None:
    snap = run_parser(lambda: snapshot_from_dump(data, NAME, Source.ssh), len(data), (DumpError,), None)
    if snap is not None:
        with time_limit(60):
            audited_everywhere(snap)


def test_collector_dump_truncated_at_every_position() -> None:
    """`tcpaudit audit dump.txt` names the file in its error; a dump cut anywhere is refused, never a crash."""
    sample = fixture_dump()
    for cut in cut_positions(sample.decode(), limit=max(EXAMPLES, 800)):
        run_parser(lambda cut=cut: parse_snapshot_bytes(sample[:cut], NAME), cut, (SnapshotFileError,), NAME)
    real = real_dump()
    assert run_parser(lambda: snapshot_from_dump(real, NAME), len(real), (), None) is not None
    for cut in cut_positions(real.decode("utf-8", "replace"), limit=max(EXAMPLES // 10, 100)):
        run_parser(lambda cut=cut: snapshot_from_dump(real[:cut], NAME), cut, (DumpError,), None)


def test_build_snapshot_survives_hostile_raw_items() -> None:
    """The conntrack counters are digits by isdigit() but not by int(): '²', Arabic-Indic, 5000 digits."""
    for value in ("\u00b2", "\u0663", "9" * 5000, "-1", "", " 1", "1e3"):
        raw = RawCapture(
            source=Source.file,
            collected_at=_dt.datetime.now(_dt.timezone.utc),
            sysctls={"net.netfilter.nf_conntrack_max": value, "net.netfilter.nf_conntrack_count": value},
        )
        snap = build_snapshot(raw)  # was ValueError for '²' and 5000 digits
        assert snap.conntrack.max is None or snap.conntrack.max == int(value)


# ---- .tcpaudit.toml --------------------------------------------------------------------------------------
CONFIG_SAMPLE = """\
fail_on = "high"

[context]
nat_idle_timeout = 240
profiles = ["azure-lb"]
clients_behind_nat = "yes"
auto_detect = true

[thresholds]
min_ephemeral_ports = 10000
port_usage_warn = 0.5

[rules]
disable = ["TCP004"]

[[waiver]]
rule = "TCP003"
target = "web-*"
reason = "hardening baseline requires rfc1337; clients never come through NAT"
expires = 2027-01-31

[[waiver]]
rule = "NAT001"
reason = "the LB idle timeout is raised to 30 minutes"
"""


def _toml_string(s: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}" for c in s) + '"'


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _toml_string(str(v))


_config_keys = st.sampled_from(
    [
        "fail_on",
        "nat_idle_timeout",
        "profiles",
        "clients_behind_nat",
        "auto_detect",
        "min_ephemeral_ports",
        "port_usage_warn",
        "disable",
        "rule",
        "target",
        "reason",
        "expires",
        "thresholds",
        "\x1b[2J",
        "a.b",
        "",
        "waiver",
    ]
)
_config_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.text(max_size=20),
    st.sampled_from(["high", "yes", "no", "critical", "*", "[", "TCP003", "  "]),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3),
)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """Structured TOML with the config's keys and hostile values, a mutated real config, or junk."""
    kind = draw(st.sampled_from(["structured", "structured", "mutated", "junk"]))
    if kind == "junk":
        return draw(
            st.one_of(
                from_bytes(),
                st.sampled_from(["a = " + "9" * 5000, "a = " + "[" * 5000, "a = {" * 2000, "x = 1\n" * 10000]),
            )
        )
    if kind == "mutated":
        lines = CONFIG_SAMPLE.split("\n")
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(lines) - 1))
            op = draw(st.sampled_from(["drop", "dup", "value"]))
            if op == "drop":
                del lines[i]
            elif op == "dup":
                lines.insert(i, lines[i])
            elif "=" in lines[i]:
                lines[i] = lines[i].split("=", 1)[0] + "= " + _toml_value(draw(_config_values))
        return "\n".join(lines)
    out = []
    for section in draw(
        st.lists(
            st.sampled_from(["", "[context]", "[thresholds]", "[rules]", "[[waiver]]", "[[waiver]]", "[x]"]),
            min_size=1,
            max_size=5,
        )
    ):
        out.append(section)
        for _ in range(draw(st.integers(0, 5))):
            out.append(f"{_toml_string(draw(_config_keys))} = {_toml_value(draw(_config_values))}")
    return "\n".join(out) + "\n"


@fuzz_settings()
@given(text=config_texts())
def test_config_gives_a_config_or_a_config_error(text: str, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.getbasetemp() / ".tcpaudit.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    cfg = run_parser(lambda: load_config(path), len(text), (ConfigError,), str(path))
    if cfg is not None and cfg.waivers and cfg.fail_on is not None:  # a usable config with waivers: apply it
        opts = AuditOptions(context=cfg.context, waivers=cfg.waivers, disabled_rules=cfg.rules.disable)
        target = audit_snapshot(_fixture_snapshot(), opts)
        for fmt in FORMATS:
            render(build_report([target]), fmt)


@functools.lru_cache(maxsize=1)
def _fixture_snapshot():  # type: ignore[no-untyped-def]
    return snapshot_from_dump(fixture_dump(), "fixture")


def test_config_regressions(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for text, message in [
        ("fail_on = " + "9" * 5000, "not valid TOML"),  # was ValueError from int()
        ("a = " + "[" * 5000 + "]" * 5000, "not valid TOML"),  # was RecursionError
        ('"\\u001b[2J" = 1\n', re.escape("\\x1b[2J: unknown key")),
    ]:  # was a raw ESC on stderr
        path.write_text(text)
        with pytest.raises(ConfigError, match=message) as e:
            load_config(path)
        check_error(e.value, str(path))


def test_config_context_typos_and_unknown_profiles_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / ".tcpaudit.toml"
    path.write_text("[context]\nnat_idle_timout = 240\n")  # was ignored: the audit assumed no NAT timeout
    with pytest.raises(ConfigError, match="unknown key.*'nat_idle_timout'.*nat_idle_timeout"):
        load_config(path)
    path.write_text(CONFIG_SAMPLE.replace('"azure-lb"', '""'))  # was accepted, then UnknownProfileError in the audit
    with pytest.raises(ConfigError, match=re.escape(f"{path}: context: ") + ".*unknown profile"):
        load_config(path)
    path.write_text(CONFIG_SAMPLE)
    assert load_config(path).context.nat_idle_timeout == 240


# ---- kernel releases -------------------------------------------------------------------------------------
REAL_RELEASES = [
    "5.4.0-137-generic",
    "3.10.0-1160.83.1.el7.x86_64",
    "5.14.21-150400.24.21-default",
    "6.1.0-18-amd64",
    "6.1.79-99.167.amzn2023.x86_64",
    "6.2.0-rc7",
    "4.19.0-26-cloud-amd64",
    "5.15.0-1057-azure",
    "6.8.0-1009-raspi",
    "5.10.0+",
    "v6.2",
    "4.12",
]


@st.composite
def release_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["parts", "mutated", "text"]))
    if kind == "text":
        return draw(st.one_of(st.text(max_size=60), from_bytes()))
    if kind == "mutated":
        s = draw(st.sampled_from(REAL_RELEASES))
        i = draw(st.integers(0, len(s)))
        return (
            s[:i]
            + draw(st.sampled_from(["", "9" * 30, "-", ".", "\x1b[2J", " ", "٣", "rc", "el", "ü"]))
            + s[i + draw(st.integers(0, 3)) :]
        )
    nums = draw(st.lists(st.one_of(st.integers(0, 10**12).map(str), st.just("")), min_size=1, max_size=5))
    sep = draw(st.sampled_from([".", "-", "_", "+", "~", ""]))
    build = draw(st.sampled_from(["", "-generic", "-rc1", ".el9_3.x86_64", "-default", "-amd64", "-" + "x" * 300]))
    return draw(st.sampled_from(["", "v", "V"])) + sep.join(nums) + build


@fuzz_settings()
@given(text=release_texts())
def test_kernel_release_parses_or_raises_kernel_release_error(text: str) -> None:
    for parse in (parse_release, parse_version):
        out = run_parser(lambda parse=parse: parse(text), len(text), (KernelReleaseError,), None)
        if out is not None and parse is parse_release:
            assert all(0 <= v <= 9999 for v in out.version)  # type: ignore[attr-defined]
            assert out.at_least(out.raw)  # type: ignore[attr-defined]
            for other in ((0, 0), (4, 12), (9999, 9999, 9999)):  # a total order: exactly one of < and >=
                assert (out < other) != (out >= other)  # type: ignore[operator]


# ---- the lint parsers ------------------------------------------------------------------------------------
LINT_SAMPLES = {
    "sysctl.conf": "# comment\nnet.ipv4.tcp_tw_reuse = 1\n-net.ipv4.ping_group_range = 0 2147483647\n"
    "net/ipv4/conf/eth0.100/rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n"
    "net.ipv4.tcp_keepalive_time = 300 # tcpaudit: ignore[NAT001] LB timeout raised\n",
    "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  securityContext:\n    sysctls:\n"
    '    - name: net.ipv4.tcp_keepalive_time\n      value: "600"\n  initContainers:\n  - name: init\n'
    '    command: ["sh", "-c", "sysctl -w net.core.somaxconn=4096 && echo 1 > '
    '/proc/sys/net/ipv4/tcp_tw_reuse"]\n  containers:\n  - name: app\n    securityContext:\n'
    '      sysctls:\n      - name: net.ipv4.ip_local_port_range\n        value: "1024 65000"\n'
    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
    '      containers: [{name: c, args: ["sysctl", "-w", "net.ipv4.tcp_fin_timeout=10"]}]\n',
    "docker-compose.yml": "services:\n  web:\n    image: nginx\n    sysctls:\n      - net.core.somaxconn=1024\n"
    "  db:\n    sysctls:\n      net.ipv4.tcp_keepalive_time: 200\nx: &a [*a]\n",
    "patch.json": '{"spec": {"template": {"spec": {"securityContext": {"sysctls": [{"name": '
    '"net.ipv4.tcp_tw_reuse", "value": "1"}]}}}}, "cni": "{\\"sysctl\\": {\\"net.core.somaxconn\\": '
    '\\"500\\"}}"}',
    "tuned.conf": "[main]\nsummary=x\ninclude=network-throughput\n[sysctl]\nnet.ipv4.tcp_fastopen=3 # x\n",
    "notes.md": "Run:\n```\n$ sudo sysctl -w net.ipv4.tcp_tw_recycle=1\n```\nnet.ipv4.tcp_fin_timeout = 5\n",
    "settings.txt": "sysctl -w net.ipv4.tcp_max_tw_buckets=5000 2\nkernel.osrelease = 3.10.0-327.el7.x86_64\n",
    "role.sls": "sysctl:\n  net.ipv4.tcp_syncookies: 0\n  params:\n  - {name: net.core.somaxconn, value: 128}\n",
}
for _p in sorted(CORPUS.glob("*/*")):
    if _p.suffix in (".conf", ".yml", ".yaml", ".json", ".md", ".txt", ".sls", ".tpl") and _p.stat().st_size < 20000:
        LINT_SAMPLES.setdefault(_p.name, _p.read_text(encoding="utf-8", errors="replace"))
_YAML_BOMBS = [
    "[" * 5000,
    "{a: " * 3000,
    "- " * 3000 + "x",
    "a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: &d [*c, *c, *c]\ne: [*d, *d, *d, *d]\n",
    "a: !!python/object/apply:os.system ['touch /tmp/tcpaudit-pwned']\n",
    "%YAML 9.9\n---\na: 1\n",
    "\x00\x1b[2J",
    "a: 'sysctl -w " + "x" * 4000,
]


@st.composite
def lint_inputs(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(LINT_SAMPLES)))
    as_name = draw(st.sampled_from([name, name, "x.conf", "x.yaml", "x.json", "x.md", "x.txt", "sysctl.conf"]))
    kind = draw(st.sampled_from(["mutated", "mutated", "soup", "bytes", "bomb"]))
    if kind == "bomb":
        return as_name, draw(st.sampled_from(_YAML_BOMBS))
    if kind == "bytes":
        return as_name, draw(from_bytes())
    vocab = (
        sorted(set(LINT_SAMPLES[name].split()))[:300]
        + HOSTILE_TOKENS
        + ["-", ":", "- name:", "value:", "{{", "}}", "sysctl", "-w", "&a", "*a"]
    )
    if kind == "soup":
        return as_name, draw(soup(vocab))
    lines = LINT_SAMPLES[name].split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert", "indent", "truncate"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(soup(vocab)))
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["  ", "\t", "- ", "    "])) + lines[i]
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        if not lines:
            lines = [""]
    return as_name, "\n".join(lines)


def _lint(name: str, text: str) -> list:
    units = run_parser(lambda: parse_text(text, "fuzz/" + name, name), len(text), (), None)
    assert units  # every file is at least one unit
    return units  # type: ignore[return-value]


@fuzz_settings()
@given(case=lint_inputs())
def test_lint_parsers_return_units_for_any_text(case: tuple[str, str]) -> None:
    _lint(*case)


@fuzz_settings(AUDIT_EXAMPLES)
@given(case=lint_inputs())
def test_any_lint_unit_can_be_judged_and_rendered(case: tuple[str, str]) -> None:
    name, text = case
    text = text.encode("utf-8", "replace").decode("utf-8")  # as lint reads files: no lone surrogates
    units = _lint(name, text)
    with time_limit(60):
        targets = lint_units(units, today=TODAY)
        for fmt in FORMATS:
            text = render(build_report(targets), fmt)
            if fmt == "junit":
                ET.fromstring(text)


def test_lint_samples_truncated_at_every_position() -> None:
    for name, sample in sorted(LINT_SAMPLES.items()):
        for cut in cut_positions(sample, limit=max(EXAMPLES // 20, 40)):  # YAML parsing is slow
            _lint(name, sample[:cut])


@pytest.mark.parametrize(
    "name, text",
    [
        ("x.json", "[" * 100_000),
        ("x.yaml", 'a: \'{"sysctl": ' + "[" * 100_000 + "'\n"),
        # libyaml's C composer segfaults on these (measured): they must be
        # routed to the pure-Python loader and end as a clear error
        ("x.yaml", "[" * 100_000 + "]" * 100_000),
        ("x.yaml", "{a: " * 100_000 + "1" + "}" * 100_000),
        ("x.yaml", "- " * 100_000 + "a\n"),
        ("x.yaml", "kind: Pod\nspec:\n  x: " + "- " * 100_000 + "a\n"),
    ],
)
def test_lint_deeply_nested_json_is_not_a_crash(name: str, text: str) -> None:
    """Found by this fuzzing: json.loads raised RecursionError through parse_text (fixed in fc30b6b)."""
    _lint(name, text)


# ---- fleet inventories, destinations, ssh_config ---------------------------------------------------------
_INVENTORY_TOKENS = [
    "web1",
    "web-2.example.com",
    "10.0.0.1",
    "[::1]:2222",
    "root@db1:2200",
    "ansible_host=10.0.0.5",
    "ansible_port=22",
    "ansible_port=0",
    "ansible_port=99999",
    "ansible_port=-1",
    "ansible_user=ops",
    "ansible_user=-oX",
    "[web]",
    "[web:vars]",
    "[web:children]",
    "# c",
    "-oProxyCommand=touch /tmp/x",
    "$(touch x)",
    "a;b",
    "`id`",
    "a|b",
    "a&b",
    "host\\nname",
    "h o",
    "ssh://u@h:1/",
    "@",
    "::",
    "fe80::1%eth0",
    "x" * 300,
    "ansible_host=$(id)",
    "ansible_host=-oProxyCommand=x",
]
_SAFE_HOST = frozenset(_HOST_CHARS)


def _destination_ok(d) -> None:  # type: ignore[no-untyped-def]
    """Nothing an inventory says can reach a command line: plain host names, IPv6 literals, users, ports."""
    host = d.host
    assert not host.startswith("-") and host
    if ":" in host:
        addr = host.split("%", 1)[0]
        assert set(addr) <= set("0123456789abcdefABCDEF:."), host
    else:
        assert set(host) <= _SAFE_HOST, host
    assert d.user is None or (set(d.user) <= _SAFE_HOST | {"$"} and not d.user.startswith("-")), d.user
    assert d.port is None or 1 <= d.port <= 65535


@st.composite
def host_lists(draw: st.DrawFn) -> str:
    lines = draw(
        st.lists(
            st.lists(st.one_of(st.sampled_from(_INVENTORY_TOKENS), st.text(max_size=10)), min_size=1, max_size=4).map(
                " ".join
            ),
            max_size=12,
        )
    )
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


@st.composite
def ansible_jsons(draw: st.DrawFn) -> str:
    hosts = draw(st.lists(st.one_of(st.sampled_from(_INVENTORY_TOKENS), st.text(max_size=10)), max_size=6))
    hostvars = {
        h: draw(
            st.dictionaries(
                st.sampled_from(["ansible_host", "ansible_user", "ansible_port", "x"]),
                st.one_of(json_values, st.sampled_from(_INVENTORY_TOKENS)),
                max_size=3,
            )
        )
        for h in hosts
    }
    doc = {"_meta": {"hostvars": hostvars}, draw(st.sampled_from(["all", "web", "ungrouped"])): {"hosts": hosts}}
    if draw(st.integers(0, 4)) == 0:
        doc = draw(json_values)
    return json.dumps(doc)


@fuzz_settings()
@given(text=st.one_of(host_lists(), from_bytes(), soup(_INVENTORY_TOKENS)))
def test_host_list_gives_safe_destinations_or_an_inventory_error(text: str) -> None:
    out = run_parser(lambda: parse_host_list(text, "hosts.txt"), len(text), (InventoryError,), "hosts.txt")
    for d in out or []:
        _destination_ok(d)


@fuzz_settings()
@given(text=st.one_of(ansible_jsons(), json_values.map(json.dumps), from_bytes()))
def test_ansible_json_gives_safe_destinations_or_an_inventory_error(text: str) -> None:
    out = run_parser(lambda: parse_ansible_json(text, "inv.json"), len(text), (InventoryError,), "inv.json")
    for d in out or []:
        _destination_ok(d)


@pytest.mark.parametrize(
    "text", ['{"all": {"hosts": ["a"]}, "x": ' + "9" * 5000 + "}", '{"all": ' + "[" * 100_000 + "}"]
)
def test_inventory_json_absurd_numbers_and_nesting_are_inventory_errors(text: str) -> None:
    """Found by this fuzzing: ValueError (int digit limit) and RecursionError escaped (fixed in 252e1f3)."""
    with pytest.raises(InventoryError, match="inv.json"):
        parse_ansible_json(text, "inv.json")


@fuzz_settings()
@given(text=st.one_of(st.sampled_from(_INVENTORY_TOKENS), st.text(max_size=40), soup(_INVENTORY_TOKENS)))
def test_destinations_are_safe_or_a_destination_error(text: str) -> None:
    out = run_parser(lambda: parse_destination(text), len(text), (DestinationError,), None)
    if out is not None:
        _destination_ok(out)


@pytest.mark.parametrize("text", ["fe80::1%$(touch${IFS}x)", "[fe80::1%;id]:22", "::1%`id`"])
def test_ipv6_scope_ids_with_shell_metacharacters_are_refused(text: str) -> None:
    """Found by this fuzzing: any IPv6 scope id was accepted, shell metacharacters included (fixed in 252e1f3)."""
    with pytest.raises(DestinationError):
        parse_destination(text)


_SSH_CONFIG_LINES = [
    "Host *",
    "Host web-*",
    "Host a b !c",
    "Match host x",
    "Match all",
    "Match exec true",
    "  HostName 10.0.0.1",
    "  HostName -oProxyCommand=x",
    "  HostName $(id)",
    "  HostName %h.x",
    "  Port 22",
    "  Port x",
    "  Port 0",
    "  User root",
    "  User -x",
    "  ProxyJump a,b",
    "  ProxyJump $(id)",
    "  ProxyCommand touch /tmp/x",
    "  IdentityFile %d/.ssh/id_%u",
    "  ConnectTimeout nan",
    "  ConnectTimeout -1",
    "  StrictHostKeyChecking no",
    "  UserKnownHostsFile /dev/null",
    "  HostKeyAlias x",
    "Include /nonexistent/*",
    "=",
    'Host "unterminated',
    "  \x1b[2J",
]


@fuzz_settings()
@given(
    text=st.one_of(
        st.lists(st.one_of(st.sampled_from(_SSH_CONFIG_LINES), st.text(max_size=20)), max_size=10).map("\n".join),
        from_bytes(),
    )
)
def test_ssh_config_gives_a_resolution_or_a_setup_error(text: str, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.getbasetemp() / "fuzz_ssh_config"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")

    def resolve_all() -> list:
        c = SSHCollector(SSHSettings(ssh_config=path, use_agent=False))
        out = []
        for alias in (concrete_config_hosts(c.config) + ["web-1", "x"])[:6]:
            try:
                out.append(c.resolve(alias, None, None))
            except (DestinationError, SSHSetupError) as exc:
                check_error(exc, None, clean=False)
        return out

    # The user's own ssh_config is trusted (SECURITY.md): its errors are one line but may echo it verbatim.
    for r in run_parser(resolve_all, len(text) + 100, (SSHSetupError,), None, clean=False) or []:
        _destination_ok(type("D", (), {"host": r.hostname, "user": r.user, "port": r.port})())
