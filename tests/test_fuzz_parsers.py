"""Fuzzing every parser of kernel and tool output (tcpaudit.collect.parsers): issue 8.

Each parser gets hostile text built from its real captures (fixtures/proc and
fixtures/corpus): truncated at every position, lines dropped, duplicated and reordered,
fields replaced by huge, negative, non-ASCII or control-character tokens, random bytes decoded as the
collectors decode them, and lines of megabytes. It must return data whose size is bounded by the
input's, or raise ParseError naming the input: no other exception, no hang (a per-example time limit).

Budget: TCPAUDIT_FUZZ_EXAMPLES examples per parser and strategy (default keeps the fuzz files to about a
minute); the acceptance run is TCPAUDIT_FUZZ_EXAMPLES=10000. With CI=true the run is derandomized, so
a failure in CI reproduces locally with the same command.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tcpaudit.collect import parsers as p
from tcpaudit.collect.parsers import ParseError
from tcpaudit.sanitize import clean_text
from tcpaudit.snapshot import STATE_NAMES

REPO = Path(__file__).resolve().parents[1]
BUSY = REPO / "fixtures" / "proc" / "busy-netns-6.18"
CORPUS = REPO / "fixtures" / "corpus"

# ---- budget --------------------------------------------------------------------------------------------
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLES = int(os.environ.get("TCPAUDIT_FUZZ_EXAMPLES") or 0) or 60
ACCEPTANCE = EXAMPLES >= 10000
EXAMPLE_SECONDS = 20.0  # CPU seconds: a hang guard, not a timing (typical examples take microseconds)
HUGE_SECONDS = 120.0  # megabyte inputs; a quadratic parser takes hours on them
SOURCE = "fuzz-input"


def fuzz_settings(examples: int = EXAMPLES) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=CI,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


def cut_positions(text: str, limit: int | None = None) -> list[int]:
    """Every position of `text` when it has at most `limit` characters; else about `limit` positions: near
    both ends, at line boundaries (+-1) and evenly spaced."""
    limit = limit if limit is not None else max(EXAMPLES, 1000)
    n = len(text)
    if n <= limit:
        return list(range(n + 1))
    edge = min(256, limit // 8)
    out = set(range(edge)) | set(range(n - edge, n + 1))
    bounds = [b for i, c in enumerate(text) if c == "\n" for b in (i - 1, i, i + 1)]
    out.update(bounds[:: max(1, 2 * len(bounds) // limit)])
    out.update(range(0, n, max(1, 4 * n // limit)))
    return sorted(x for x in out if 0 <= x <= n)


# ---- the checks every parser gets ------------------------------------------------------------------------
class Hang(BaseException):
    """No result within the time limit. A BaseException so that no `except Exception` can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang after `seconds` of CPU time (a busy CI machine does not make a parser hang)."""

    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s of CPU time")

    old = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def weight(obj: object) -> int:
    """Memory a result holds, in rough units: one per scalar, per container slot, per character; a string
    or container referenced many times counts once (the way it is held in memory)."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, (str, bytes)):
            if id(o) not in seen:
                seen.add(id(o))
                total += len(o) + 1
        elif isinstance(o, bool) or o is None or isinstance(o, float):
            total += 1
        elif isinstance(o, int):
            total += 1 + o.bit_length() // 64
        elif isinstance(o, BaseModel):
            stack.append(o.model_dump())
        elif isinstance(o, dict):
            if id(o) in seen:
                continue
            seen.add(id(o))
            total += 1 + len(o)
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            if id(o) in seen:
                continue
            seen.add(id(o))
            total += 1 + len(o)
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.append(vars(o))
        else:
            total += 1
    return total


def check_error(exc: BaseException, source: str | None, clean: bool = True) -> None:
    """A typed error is one bounded line that names the input and cannot drive a terminal."""
    msg = str(exc)
    if source is not None:
        assert source in msg, msg[:300]
    assert "\n" not in msg and "\r" not in msg, msg[:300]
    assert len(msg) <= 2000 + len(source or ""), f"{len(msg)} characters: {msg[:300]}"
    assert not clean or clean_text(msg) == msg, f"unescaped control characters in {msg[:300]!r}"


def run_parser(
    call: Callable[[], object],
    size: int,
    errors: tuple[type[BaseException], ...],
    source: str | None,
    seconds: float = EXAMPLE_SECONDS,
    clean: bool = True,
) -> object | None:
    """The parser's result, or None after its typed error; anything else propagates and fails the test."""
    try:
        with time_limit(seconds):
            out = call()
    except errors as exc:
        check_error(exc, source, clean)
        return None
    w = weight(out)
    assert w <= 16 * size + 2048, f"result weighs {w} for {size} characters of input"
    return out


# ---- parsers, their captures and what their results must satisfy -----------------------------------------
def _read(*paths: Path) -> tuple[str, ...]:
    return tuple(q.read_text(encoding="utf-8", errors="replace") for q in paths if q.is_file())


def _corpus(*names: str) -> tuple[Path, ...]:
    return tuple(CORPUS / n for n in names)


def _grep_sample() -> str:
    """`grep -r '' /proc/sys/net/...` output, made from a real `sysctl -a` capture (multi-line file included)."""
    lines = []
    for line in (CORPUS / "sysctl-dump/centos7.2-3.10.0-327-ceph-node-sysctl-a-annotated.txt").read_text().splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key.startswith("net."):
            path = "/proc/sys/" + "/".join(part.replace("/", ".") for part in key.split("."))
            lines.append(f"{path}:{value}")
    lines += [
        "/proc/sys/net/ipv4/tcp_fastopen_key:00000000-00000000-00000000-00000000",
        "/proc/sys/net/ipv4/tcp_fastopen_key:11111111-11111111-11111111-11111111",
    ]
    return "\n".join(lines[:400]) + "\n"


OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nID_LIKE="rhel fedora"\n'
    'HOME_URL="https://www.debian.org/"\n# comment\n'
)
NAT_RULES = (
    "# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n"
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
    "-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 15001\n"
    "-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination 10.0.0.5:8080\nCOMMIT\n"
)


def _sockets_ok(rows: list) -> None:
    for s in rows:
        assert s.state in STATE_NAMES
        assert 0 <= s.local_port <= 65535 and 0 <= s.remote_port <= 65535, s
        assert s.family == (6 if ":" in s.local_addr else 4), s
        assert s.timer_ms is None or 0 <= s.timer_ms < 2**63, s


def _columns_ok(cols: dict) -> None:
    n = len(cols["state"])
    assert all(len(v) == n for v in cols.values())
    _sockets_ok([p.Socket(*row, None, None) for row in zip(*(cols[c] for c in p.SS_COLUMNS), strict=False)])


def _detail_ok(out: dict) -> None:
    for (_la, lp, _ra, rp), (snd, rcv) in out.items():
        assert 0 <= lp <= 65535 and 0 <= rp <= 65535
        assert snd is None or 0 <= snd < 10**18
        assert rcv is None or 0 <= rcv < 10**18


def _uptime_ok(v: float) -> None:
    assert math.isfinite(v) and 0 <= v < 1e10


@dataclass(frozen=True)
class Parser:
    name: str
    parse: Callable[[str], object]
    samples: tuple[str, ...]
    errors: tuple[type[BaseException], ...] = (ParseError,)
    source: str | None = SOURCE
    valid: Callable[[Any], None] = field(default=lambda out: None)

    def __str__(self) -> str:
        return self.name


PARSERS = [
    Parser(
        "counter_pairs",
        lambda t: p.parse_counter_pairs(t, SOURCE),
        _read(
            BUSY / "netstat",
            BUSY / "snmp",
            CORPUS / "runtime/node_exporter-fixture-proc-net-netstat.txt",
            CORPUS / "runtime/node_exporter-fixture-proc-net-snmp.txt",
        ),
    ),
    Parser(
        "sockstat",
        lambda t: p.parse_sockstat(t, SOURCE),
        _read(
            BUSY / "sockstat", BUSY / "sockstat6", CORPUS / "runtime/node_exporter-fixture-proc-net-sockstat-rhel4.txt"
        ),
    ),
    Parser(
        "conntrack_stat",
        lambda t: p.parse_conntrack_stat(t, SOURCE),
        _read(
            BUSY / "stat_nf_conntrack",
            CORPUS / "runtime/node_exporter-fixture-proc-net-stat-nf_conntrack.txt",
            CORPUS / "runtime/elastic-beats-fixture-proc-net-stat-nf_conntrack.txt",
        ),
    ),
    Parser("os_release", lambda t: p.parse_os_release(t, SOURCE), (OS_RELEASE,), errors=()),
    Parser("uptime", lambda t: p.parse_uptime(t, SOURCE), ("35536.62 69710.43\n", "0.01 0.00\n"), valid=_uptime_ok),
    Parser("grep_sysctls", lambda t: p.parse_grep_sysctls(t, SOURCE), (_grep_sample(),), errors=()),
    Parser(
        "sysctl_dump",
        lambda t: p.parse_sysctl_dump(t, SOURCE),
        _read(
            CORPUS / "sysctl-dump/centos7.2-3.10.0-327-ceph-node-sysctl-a-annotated.txt",
            *_corpus(
                "sysctl-dump/amzn1-4.14.55-ec2-docker-host-sysctl-a.txt",
                "sysctl-dump/rhcos-4.18-el8-openshift-master-sosreport-sysctl-a.txt",
            ),
        ),
        errors=(),
    ),
    Parser(
        "ss_table",
        lambda t: p.parse_ss_table(t, SOURCE),
        _read(BUSY / "ss-tanoeH.txt", CORPUS / "runtime/datadog-network-fixture-ss-ipv4-tcp.txt"),
        valid=_sockets_ok,
    ),
    Parser(
        "ss_columns",
        lambda t: p.parse_ss_columns(t, SOURCE),
        _read(BUSY / "ss-tanoeH.txt", CORPUS / "runtime/datadog-network-fixture-ss-ipv4-tcp.txt"),
        valid=_columns_ok,
    ),
    Parser(
        "ss_detail", lambda t: p.parse_ss_detail(t, SOURCE), _read(BUSY / "ss-tinH-established.txt"), valid=_detail_ok
    ),
    Parser(
        "ss_detail_fast",
        lambda t: p.parse_ss_detail_fast(t, SOURCE, 3),
        _read(BUSY / "ss-tinH-established.txt"),
        valid=_detail_ok,
    ),
    Parser(
        "proc_net_tcp",
        lambda t: p.parse_proc_net_tcp(t, SOURCE),
        _read(BUSY / "tcp", BUSY / "tcp6", CORPUS / "runtime/node_exporter-fixture-proc-net-tcp.txt"),
        valid=_sockets_ok,
    ),
    Parser("nat_rules", lambda t: p.nat_redirect_rules(t), (NAT_RULES,), errors=(), source=None),
]
assert all(x.samples for x in PARSERS), [x.name for x in PARSERS if not x.samples]
BY_NAME = {x.name: x for x in PARSERS}

# ---- strategies ------------------------------------------------------------------------------------------
HOSTILE_TOKENS = [
    "",
    "0",
    "-0",
    "-1",
    "+1",
    "1_000",
    "\u0663",
    "\u00b2",
    "9" * 40,
    "9" * 5000,
    "-" + "9" * 5000,
    "f" * 5000,
    "ffffffffffffffffffff",
    "0x10",
    "1e999",
    "nan",
    "inf",
    "-inf",
    "1.5",
    ".",
    "1.2.3",
    "\x00",
    "\x1b[2J",
    "\x1b]0;pwned\x07",
    "\x9b31m",
    "\u202e",
    "\ufeff",
    "\u2028",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\r",
    "\udcff",
    "<x&amp;'\">",
    ":",
    "::",
    "*",
    "*:*",
    "[::1]:80",
    "[:80",
    "]:80",
    "[",
    "]",
    "[]:1",
    "1.2.3.4:99999",
    "1.2.3.4:65536",
    "1.2.3.4:-1",
    "1.2.3.4:",
    ":80",
    "%",
    "%eth0:1",
    "a" * 65 + ":1",
    "timer:(on,99999999999999999999999999999999999999d,9)",
    "timer:(on," + "9" * 400 + "d,0)",
    "timer:(keepalive,1min2sec,0)",
    "timer:(on,,)",
    "timer:(",
    "timer:(on,1sec," + "9" * 5000 + ")",
    "lastsnd:" + "9" * 30,
    "lastsnd:" + "9" * 5000,
    "lastrcv:-1",
    "lastrcv:1",
    "xlastsnd:5",
    "ino:" + "9" * 40,
    "ino:-3",
    "uid:-5",
    "uid:" + "9" * 33,
    "uid:\u0663",
    "State",
    "Netid",
    "ESTAB",
    "LISTEN",
    "TIME-WAIT",
    "SYN-RECV",
    "sl",
    "TcpExt:",
    "Tcp:",
    "TCP:",
    "inuse",
    "entries",
    "/proc/sys/net/ipv4/tcp_tw_reuse:",
    "/proc/sys/",
    "/proc/sys/net/a:" + "x" * 100,
    " = ",
    "=",
    "#",
    ";",
    "-A",
    "-j",
    "REDIRECT",
    "DNAT",
    "KUBE-SERVICES",
    "0100007F:AFC8",
    "0100007F:FFFFFF",
    "00000000000000000000000000000000:0000",
    "0000000000000000FFFF00000100007F:0050",
    "ZZ:ZZ",
    "0A",
    "FF",
    "00000000:00000000",
    "00:00000000",
    "1:2:3",
    "ID=",
    'PRETTY_NAME="\x1b[31mred"',
    "'",
    '"',
]
_SEPARATORS = [" ", "  ", "\t", " \t "]
_NEWLINES = ["\n", "\r\n", "\r", "\x0b", "\u2028", "\x85"]


def _vocabulary(texts: tuple[str, ...]) -> list[str]:
    words = sorted({w for t in texts for w in t.split()})
    return words[:400] + HOSTILE_TOKENS


def token(vocab: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(vocab),
        st.integers(-(2**70), 2**70).map(str),
        st.integers(0, 2**70).map(lambda n: f"{n:X}"),
        st.text(max_size=12),
    )


def soup(vocab: list[str]) -> st.SearchStrategy[str]:
    """Lines of real and hostile tokens: duplicated and missing fields, wrong types, odd separators."""
    line = st.tuples(
        st.sampled_from(["", "", "", "\t", " "]), st.lists(token(vocab), max_size=10), st.sampled_from(_SEPARATORS)
    ).map(lambda t: t[0] + t[2].join(t[1]))
    return st.tuples(st.lists(line, max_size=10), st.sampled_from(_NEWLINES)).map(lambda t: t[1].join(t[0]))


@st.composite
def mutated(draw: st.DrawFn, samples: tuple[str, ...], vocab: list[str]) -> str:
    """A real capture with a few edits: truncation, lines dropped/duplicated/swapped/inserted, tokens
    replaced/duplicated/dropped, bytes inserted."""
    text = draw(st.sampled_from(samples))
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["truncate", "drop", "dup", "swap", "insert", "token", "dup_token", "drop_token", "bytes", "repeat"]
            )
        )
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        if op == "truncate":
            joined = "\n".join(lines)
            lines = joined[: draw(st.integers(0, len(joined)))].split("\n")
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(soup(vocab)))
        elif op == "repeat":
            lines[i : i + 1] = [lines[i]] * draw(st.integers(2, 50))
        else:
            words = lines[i].split(" ")
            k = draw(st.integers(0, len(words) - 1))
            if op == "token":
                words[k] = draw(token(vocab))
            elif op == "dup_token":
                words.insert(k, words[k])
            elif op == "drop_token":
                del words[k]
            else:
                raw = draw(st.binary(max_size=16)).decode(draw(st.sampled_from(["latin-1", "utf-8"])), "replace")
                words[k] = words[k][:1] + raw + words[k][1:]
            lines[i] = " ".join(words)
    return "\n".join(lines)


def from_bytes() -> st.SearchStrategy[str]:
    """Random bytes as the collectors decode them (utf-8 with replacement), and as latin-1/surrogateescape."""
    return st.tuples(st.binary(max_size=300), st.sampled_from(["replace", "latin-1", "surrogateescape"])).map(
        lambda t: t[0].decode("latin-1") if t[1] == "latin-1" else t[0].decode("utf-8", t[1])
    )


def inputs(x: Parser) -> st.SearchStrategy[str]:
    vocab = _vocabulary(x.samples)
    return st.one_of(mutated(x.samples, vocab), soup(vocab), from_bytes(), st.text(max_size=200))


# ---- the tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parser", PARSERS, ids=str)
def test_parser_returns_bounded_data_or_its_typed_error(parser: Parser) -> None:
    @fuzz_settings()
    @given(text=inputs(parser))
    def fuzz(text: str) -> None:
        out = run_parser(lambda text=text: parser.parse(text), len(text), parser.errors, parser.source)
        if out is not None:
            parser.valid(out)

    fuzz()


@pytest.mark.parametrize("parser", PARSERS, ids=str)
def test_parser_survives_truncation_at_every_position(parser: Parser) -> None:
    for sample in parser.samples:
        for cut in cut_positions(sample):
            text = sample[:cut]
            out = run_parser(lambda text=text: parser.parse(text), len(text), parser.errors, parser.source)
            if out is not None:
                parser.valid(out)


def _enormous(x: Parser) -> list[tuple[str, str]]:
    sample = x.samples[0]
    first = sample.split("\n", 1)[0]
    mb = 1 << 20
    cases = [
        ("one 4 MB line", "A" * (4 * mb)),
        ("a 2 MB number", "9" * (2 * mb) + " 1 2 3\n"),
        ("a 2 MB negative number", "-" + "9" * (2 * mb)),
        ("a 2 MB token in a real line", first.replace(" ", " " + "7" * (2 * mb) + " ", 1) + "\n" + sample),
        ("2 MB of separators", " \t" * mb),
        ("a million empty lines", "\n" * mb),
        ("the capture repeated to 4 MB", sample * max(1, (4 * mb) // max(1, len(sample)))),
        ("its first line repeated 100,000 times", (first + "\n") * 100_000),
        ("4 MB of NUL and ESC", "\x00\x1b" * (2 * mb)),
    ]
    if x.name == "grep_sysctls":  # a multi-line file: the same path on every line
        cases.append(("one sysctl on 200,000 lines", "/proc/sys/net/ipv4/tcp_fastopen_key:0-0-0-0\n" * 200_000))
    return cases


@pytest.mark.parametrize("parser", PARSERS, ids=str)
def test_parser_handles_megabyte_inputs_in_bounded_time_and_memory(parser: Parser) -> None:
    for what, text in _enormous(parser):
        try:
            out = run_parser(
                lambda text=text: parser.parse(text), len(text), parser.errors, parser.source, HUGE_SECONDS
            )
        except Hang:
            pytest.fail(f"{parser.name}: {what}: no result after {HUGE_SECONDS} s (quadratic?)")
        if out is not None:
            parser.valid(out)


ss_texts = st.one_of(inputs(BY_NAME["ss_table"]), soup(_vocabulary(BY_NAME["ss_table"].samples)))
detail_texts = inputs(BY_NAME["ss_detail"])


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        with time_limit(EXAMPLE_SECONDS):
            return "ok", call()
    except ParseError as exc:
        return "error", str(exc)


@fuzz_settings()
@given(text=ss_texts, cuts=st.lists(st.integers(0, 10**6), max_size=4))
def test_column_parser_and_streaming_agree_with_the_strict_ss_parser(text: str, cuts: list[int]) -> None:
    """The fast column-wise parser (also fed in pieces, as the local collector does) gives the strict
    parser's sockets or the strict parser's error, whatever the input."""
    strict = _outcome(lambda: p.parse_ss_table(text, SOURCE))
    fast = _outcome(lambda: p.parse_ss_columns(text, SOURCE))
    if strict[0] == "ok":
        rows = strict[1]
        expected = {c: [getattr(s, c) for s in rows] for c in p.SS_COLUMNS}  # type: ignore[attr-defined]
        strict = ("ok", expected)
    assert fast == strict
    lines = text.splitlines(keepends=True)
    if lines:
        bounds = sorted({c % (len(lines) + 1) for c in cuts} | {0, len(lines)})
        parser = p.SsTableParser(SOURCE)

        def feed_pieces() -> dict:
            for a, b in zip(bounds, bounds[1:], strict=False):
                parser.feed("".join(lines[a:b]))
            return parser.columns()

        assert _outcome(feed_pieces) == strict


@fuzz_settings()
@given(text=detail_texts, limit=st.one_of(st.none(), st.integers(0, 8)))
def test_fast_detail_parser_agrees_with_the_strict_one(text: str, limit: int | None) -> None:
    assert _outcome(lambda: p.parse_ss_detail_fast(text, SOURCE, limit)) == _outcome(
        lambda: p.parse_ss_detail(text, SOURCE, limit)
    )


@fuzz_settings()
@given(token=st.one_of(token(HOSTILE_TOKENS), st.text(max_size=80)))
def test_endpoints_and_timers(token: str) -> None:
    out = run_parser(lambda: p.split_endpoint(token, SOURCE), len(token), (ParseError,), SOURCE)
    if out is not None:
        host, port = out  # type: ignore[misc]
        assert 0 <= port <= 65535
    ms = p.parse_timer_ms(token)
    assert ms is None or 0 <= ms < 2**63


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ESTAB 0 0 1.2.3.4:1 5.6.7.8:2 timer:(on," + "9" * 400 + "sec,0)", None),  # was OverflowError
        ("ESTAB 0 0 1.2.3.4:1 5.6.7.8:2 timer:(on,1sec," + "9" * 5000 + ")", None),  # was ValueError (int digits)
    ],
)
def test_regression_absurd_timers_are_unknown_not_a_crash(text: str, expected: object) -> None:
    for parse in (p.parse_ss_table, p.parse_ss_columns):
        out = parse(text, SOURCE)
        timers = [s.timer_ms for s in out] if isinstance(out, list) else out["timer_ms"]
        assert timers == [expected]


def test_regression_absurd_idle_times_and_ports() -> None:
    detail = "0 0 1.2.3.4:1 5.6.7.8:2\n\t lastsnd:" + "9" * 5000 + " lastrcv:12\n"
    for parse in (p.parse_ss_detail, p.parse_ss_detail_fast):
        assert parse(detail, SOURCE) == {("1.2.3.4", 1, "5.6.7.8", 2): (None, 12)}  # was ValueError
    line = "0: 0100007F:FFFFFF 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1"
    with pytest.raises(ParseError, match="port out of range"):  # was accepted as port 16777215
        p.parse_proc_net_tcp(line, SOURCE)


def test_regression_multi_line_sysctl_is_linear() -> None:
    text = "/proc/sys/net/ipv4/tcp_fastopen_key:0-0\n" * 200_000  # was quadratic: hours at this size
    with time_limit(HUGE_SECONDS):
        out = p.parse_grep_sysctls(text, SOURCE)
    assert out == {"net.ipv4.tcp_fastopen_key": " ".join(["0-0"] * 200_000)}


def test_regression_error_messages_are_clean_and_values_printable() -> None:
    with pytest.raises(ParseError) as e:  # a counter name from the input itself, with a control character
        p.parse_sockstat("TCP: \x1b[2J x\n", SOURCE)
    check_error(e.value, SOURCE)
    line = "0: 0100007F:0050 00000000:0000 " + "F" * 5000 + " 00000000:00000000 00:00000000 00000000 0 0 1 1"
    with pytest.raises(ParseError, match="more than 16"):  # was ValueError: the error printed a 6000-digit int
        p.parse_proc_net_tcp(line, SOURCE)
    header, row = (BUSY / "stat_nf_conntrack").read_text().splitlines()[:2]
    with pytest.raises(ParseError, match="more than 16"):  # an int no report could print (JSON, text)
        p.parse_conntrack_stat(header + "\n" + row.replace("00000000", "F" * 6000, 1), SOURCE)
