"""The scale path: column-wise ss parsers that parse while ss prints, checked against the strict ones.

The fast parsers (SsTableParser, SsDetailParser) must give exactly what parse_ss_table/parse_ss_detail
give - the same data or the same ParseError - for real captures, truncations, hostile mutations and any
split of the input into pieces. The streaming collector must keep the same RawCapture items, gaps and
truncation rules, and the benchmark must run end to end (no timing is asserted here: see
benchmarks/sockets_bench.py for the numbers).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from tcpaudit.collect import parsers as p
from tcpaudit.collect.local import _Stream

from .netns import PYTHON, ROOT, make_netns  # noqa: F401 - fixture

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = [
    FIX / "proc" / "busy-netns-6.18" / "ss-tanoeH.txt",
    FIX / "corpus" / "runtime" / "datadog-network-fixture-ss-ipv4-tcp.txt",
]
DETAIL = FIX / "proc" / "busy-netns-6.18" / "ss-tinH-established.txt"

SAMPLE_TABLE = """\
LISTEN     0      4096   0.0.0.0:502     0.0.0.0:*     ino:939932 sk:72e76 cgroup:/ <->
ESTAB      0      0      127.0.0.1:48718 127.0.0.1:7000  timer:(keepalive,1.696ms,0) uid:1000 ino:10993 sk:10 <->
TIME-WAIT  0      0      127.0.0.1:54218 127.0.0.3:612   timer:(timewait,45sec,0) ino:0 sk:a6baf
FIN-WAIT-2 0      0      [::ffff:10.0.0.1]:48696 [fe80::1%eth0]:7000  timer:(timewait,1min2sec,0) ino:0 sk:d
CLOSE-WAIT 1      0      *:7000  *:*  ino:10990 sk:c cgroup:unreachable:1 -->
SYN-SENT   0      1      10.0.0.1%eth0:44410    172.21.206.198:7777 timer:(on,1.684ms,2) ino:2024378629 sk:aa4e2 <->
"""
SAMPLE_DETAIL = """\
0      0      127.0.0.1:48718 127.0.0.1:7000
\t cubic wscale:10,10 rto:200 rtt:0.017/0.008 mss:32741 send 154075294118bps lastsnd:316 lastrcv:317 lastack:316
0      0      [::1]:80 [::1]:50000
\t cubic lastrcv:5 pacing_rate 1bps
0      0      10.0.0.1:22 10.0.0.2:50000
\t bbr xlastsnd:9 lastsnd:7 lastsnd:8 _lastrcv:1
"""

# Mutations that stress exactly where a fast path could diverge from the strict one.
_NOISE = [
    "\t",
    "\x1f",
    "\xa0",
    "\u2003",
    "\u0663",
    "+",
    "-",
    "_",
    ":",
    "[",
    "]",
    "%",
    "*",
    "(",
    ")",
    ",",
    " ",
    "99999",
    "65536",
    "0" * 40,
    "timer:(on,1ms,2)",
    "timer:(on,9ms," + "1" * 12 + ")",
    "uid:x",
    "ino:",
    "lastsnd:",
    "lastrcv:12",
    "lastsnd:" + "7" * 19,
    " lastrcv:" + "3" * 18,
    "9" * 20,
    "ESTAB",
    "State ",
    "\n",
    "\r",
    "\x85",
    "\u2028",
    "\x0c",
    "é",
]


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(*args))
    except p.ParseError as exc:
        return ("error", str(exc))


def _strict_table(text: str):  # type: ignore[no-untyped-def]
    out = _outcome(p.parse_ss_table, text, "t")
    if out[0] == "ok":
        rows = out[1]
        out = ("ok", {c: [r[i] for r in rows] for i, c in enumerate(p.SS_COLUMNS)})
    return out


def _fast_table(text: str, pieces: int = 1, rng: random.Random | None = None):  # type: ignore[no-untyped-def]
    def run() -> dict:
        parser = p.SsTableParser("t")
        for piece in _split(text, pieces, rng):
            parser.feed(piece)
        return parser.columns()

    return _outcome(run)


def _split(text: str, pieces: int, rng: random.Random | None) -> list[str]:
    """Cut after line breaks only (\\n), as the collector does with the bytes it reads."""
    if pieces <= 1 or rng is None:
        return [text]
    ends = [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    cuts = sorted(rng.sample(ends, min(len(ends), pieces - 1)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=False)]


def _mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4:
            chars[i:i] = list(rng.choice(_NOISE))
        elif op < 0.8 and i < len(chars):
            chars[i] = rng.choice(_NOISE)
        else:
            del chars[i : i + rng.randint(1, 8)]
    return "".join(chars)


def test_runtime_fast_table_parser_equals_strict() -> None:
    rng = random.Random(5)
    texts = [SAMPLE_TABLE, *(path.read_text() for path in CAPTURES)]
    for text in texts:
        assert _fast_table(text) == _strict_table(text)
        for cut in range(0, len(text), 11):  # truncations
            assert _fast_table(text[:cut]) == _strict_table(text[:cut]), cut
        for _ in range(3):  # any split into pieces
            assert _fast_table(text, rng.randint(2, 20), rng) == _strict_table(text)
    for _ in range(3000):  # hostile mutations: same data or the same ParseError
        text = _mutate(rng.choice(texts[:2]), rng)
        assert _fast_table(text) == _strict_table(text), repr(text)
        assert _fast_table(text, 5, rng) == _strict_table(text), repr(text)


def test_runtime_fast_detail_parser_equals_strict() -> None:
    rng = random.Random(7)
    texts = [SAMPLE_DETAIL, DETAIL.read_text()]
    fast = p.parse_ss_detail_fast(SAMPLE_DETAIL, "d")
    assert fast[("127.0.0.1", 48718, "127.0.0.1", 7000)] == (316, 317)
    assert fast[("::1", 80, "::1", 50000)] == (None, 5)
    assert fast[("10.0.0.1", 22, "10.0.0.2", 50000)] == (8, None)  # the regex rules: last match, word boundary
    for text in texts:
        for limit in (None, 0, 1, 2, 5):
            assert _outcome(p.parse_ss_detail_fast, text, "d", limit) == _outcome(p.parse_ss_detail, text, "d", limit)
        for cut in range(0, len(text), 13):
            assert _outcome(p.parse_ss_detail_fast, text[:cut], "d") == _outcome(p.parse_ss_detail, text[:cut], "d")
    for _ in range(3000):
        text = _mutate(rng.choice(texts), rng)
        limit = rng.choice([None, 1, 3])
        strict = _outcome(p.parse_ss_detail, text, "d", limit)
        assert _outcome(p.parse_ss_detail_fast, text, "d", limit) == strict, repr(text)

        def pieces(text: str = text, limit: int | None = limit) -> dict:
            parser = p.SsDetailParser("d", limit)
            for piece in _split(text, 4, rng):
                parser.feed(piece)
            return parser.result()

        assert _outcome(pieces) == strict, repr(text)


def _reference_run(data: bytes, limit: int) -> tuple[bytes, bool]:
    """What local._run(limit_lines=...) keeps of a command's output, and whether it notes truncation."""
    import io

    lines = []
    for n, line in enumerate(io.BytesIO(data)):
        if n >= limit:
            return b"".join(lines), True
        lines.append(line)
    return b"".join(lines), False


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_runtime_stream_line_limit_matches_run(limit: int) -> None:
    rng = random.Random(limit)
    for _ in range(300):
        n = rng.randint(0, 10)
        data = b"".join(b"x" * rng.randint(0, 5) + b"\n" for _ in range(n)) + (b"tail" if rng.random() < 0.3 else b"")
        expected = _reference_run(data, limit)
        s = _Stream("x", ["true"], None, limit_lines=limit)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 6)
            if not s.feed(data[pos : pos + step]):
                break
            pos += step
        s.close()
        assert (s.text().encode(), s.truncated) == expected, (data, limit)


STATE = r"""
srv = socket.socket()
srv.bind(("127.0.0.1", 7500))
srv.listen(512)
held = []
for i in range(300):
    c = socket.create_connection(("127.0.0.1", 7500))
    a = srv.accept()[0]
    if i % 3 == 0:
        c.close(); a.close()  # TIME-WAIT
    else:
        held += [c, a]
ready()
for _ in commands():
    pass
"""

COMPARE = r"""
import json, sys
from tcpaudit.collect.local import capture_local
from tcpaudit.collect.build import build_snapshot
from tcpaudit.collect import parsers as p
raw = capture_local(detail_cap=int(sys.argv[1]), sockets="ss")  # the ss path (sock_diag: test_sockdiag)
gaps = [g.item + ":" + g.reason.value for g in raw.gaps]
out = {"parsed": sorted(raw.parsed), "items": sorted(raw.items), "gaps": gaps}
out["table_equal"] = raw.parsed["ss"] == p.parse_ss_columns(raw.items["ss"])
if "ss-detail" in raw.items:
    out["detail_equal"] = raw.parsed.get("ss-detail") == p.parse_ss_detail(raw.items["ss-detail"], "d", raw.detail_cap)
    out["detail_lines"] = len(raw.items["ss-detail"].splitlines())
fast = build_snapshot(raw)
raw.parsed.clear()
slow = build_snapshot(raw)
out["snapshots_equal"] = fast.model_dump() == slow.model_dump()
out["state_counts"] = fast.sockets.state_counts
out["detail"] = fast.sockets.detail
print(json.dumps(out))
"""


@pytest.mark.root
@pytest.mark.parametrize("detail_cap", [50_000, 10])
def test_runtime_streamed_capture_equals_parsing_the_text(make_netns, detail_cap: int) -> None:  # noqa: F811
    ns = make_netns(net__ipv4__tcp_tw_reuse=0)
    ns.spawn(STATE).ready()
    r = ns.run([PYTHON, "-c", COMPARE, str(detail_cap)], cwd=str(ROOT), timeout=120)
    out = json.loads(r.stdout)
    assert out["parsed"] == ["ss", "ss-detail"]
    assert out["table_equal"] and out["detail_equal"] and out["snapshots_equal"]
    assert out["state_counts"] == {"LISTEN": 1, "ESTAB": 400, "TIME-WAIT": 100}
    if detail_cap == 10:  # the detail pass stops after 2*cap+2 lines, says so, and the table says partial
        assert "ss-detail:truncated" in out["gaps"]
        assert out["detail_lines"] == 22 and out["detail"] == "ss-i-partial"
    else:
        assert not any(g.startswith("ss") for g in out["gaps"])
        assert out["detail"] == "ss-i"


@pytest.mark.root
def test_runtime_socket_bench_runs_end_to_end() -> None:
    """A small run of the benchmark: the namespace fills, both commands run, the report comes back."""
    from .netns import require_netns

    require_netns()
    sys.path.insert(0, str(ROOT))
    from benchmarks.sockets_bench import run_socket_bench

    res = run_socket_bench(4000, repeats=1)
    assert res["composition"]["ESTAB"] == 1000 and res["composition"]["LISTEN"] == 7
    assert 3900 <= res["sockets"] <= 4100, res
    assert res["exit_code"] in (0, 1)
    assert res["tcpaudit_s"] > 0 and res["floor_s"] > 0 and res["tcpaudit_rss_mib"] > 0
    for key in ("sockets_per_s", "overhead_s", "floor_ratio", "tcpaudit_cpu_s", "floor_cpu_s", "findings"):
        assert key in res
