"""Pure parsers for the text the kernel and its tools print.

Every parser takes text and the name of its input, and either returns data or
raises ParseError naming that input. They never touch the file system, so the
local collector, the SSH collector and the fuzz tests all run the same code.
"""

from __future__ import annotations

import re

from ..sanitize import clean_text
from ..snapshot import S64_MIN, STATE_NAMES, TCP_STATES, U64_MAX, Distro, Socket

MAX_FIELD_LEN = 4096  # longer tokens are hostile or corrupt, not something a kernel prints


class ParseError(ValueError):
    """Input could not be parsed. The message names the input."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}")


def _int(token: str, source: str, what: str, low: int = S64_MIN) -> int:
    """A decimal the kernel printed: a 64-bit counter (signed ones too: Tcp.MaxConn is -1), or with low=0 an
    unsigned field. Anything longer or outside that range is no kernel output (and would not load again from
    a saved snapshot, whose numbers are bounded the same way)."""
    if len(token) > 32:
        raise ParseError(source, f"{clean_text(what, 64)} is not a number: {token[:32]!r}...")
    try:
        value = int(token)
    except ValueError:  # `what` may be a name from the input itself (sockstat, netstat)
        raise ParseError(source, f"{clean_text(what, 64)} is not a number: {token!r}") from None
    if not low <= value <= U64_MAX:
        raise ParseError(source, f"{clean_text(what, 64)} is out of range: {token!r}")
    return value


def _uint(token: str, source: str, what: str) -> int:
    return _int(token, source, what, low=0)


# ---- /proc/net/netstat and /proc/net/snmp -----------------------------------
def parse_counter_pairs(text: str, source: str) -> dict[str, dict[str, int]]:
    """Header/value line pairs: `TcpExt: A B` then `TcpExt: 1 2`."""
    out: dict[str, dict[str, int]] = {}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) % 2:
        raise ParseError(source, "odd number of lines: a header without its values (truncated?)")
    for i in range(0, len(lines), 2):
        head, vals = lines[i].split(), lines[i + 1].split()
        if not head or not vals or head[0] != vals[0] or not head[0].endswith(":"):
            raise ParseError(source, f"line {i + 1}: header and value lines do not pair up")
        if len(head) != len(vals):
            raise ParseError(source, f"line {i + 1}: {len(head) - 1} names but {len(vals) - 1} values")
        group = head[0][:-1]
        out[group] = {name: _int(v, source, name) for name, v in zip(head[1:], vals[1:], strict=False)}
    return out


# ---- /proc/net/sockstat -----------------------------------------------------
def parse_sockstat(text: str, source: str) -> dict[str, dict[str, int]]:
    """`TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 261` -> {"TCP": {"inuse": 1, ...}}."""
    out: dict[str, dict[str, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        group, sep, rest = line.partition(":")
        toks = rest.split()
        if not sep or len(toks) % 2:
            raise ParseError(source, f"line {n}: expected 'NAME: key value ...'")
        out[group.strip()] = {toks[i]: _int(toks[i + 1], source, toks[i]) for i in range(0, len(toks), 2)}
    return out


# ---- /proc/net/stat/nf_conntrack --------------------------------------------
def parse_conntrack_stat(text: str, source: str) -> list[dict[str, int]]:
    """A header of names, then one row of hex numbers per CPU."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError(source, "empty")
    names = lines[0].split()
    if not names or any(not re.fullmatch(r"[a-z_]+", n) for n in names):
        raise ParseError(source, "first line is not a header of counter names")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        vals = line.split()
        if len(vals) != len(names):
            raise ParseError(source, f"line {n}: {len(vals)} values for {len(names)} names")
        # 32-bit counters; a longer value is no counter (and could not even be printed in decimal)
        if any(len(v) > 16 for v in vals):
            raise ParseError(source, f"line {n}: a value of more than 16 hex digits")
        try:
            rows.append({k: int(v, 16) for k, v in zip(names, vals, strict=False)})
        except ValueError:
            raise ParseError(source, f"line {n}: not hexadecimal") from None
    return rows


# ---- /etc/os-release ----------------------------------------------------------
def parse_os_release(text: str, source: str = "os-release") -> Distro:
    vals: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, _, v = line.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        vals[k.strip()] = v[:256]
    return Distro(
        id=vals.get("ID"),
        id_like=vals.get("ID_LIKE"),
        version_id=vals.get("VERSION_ID"),
        pretty_name=vals.get("PRETTY_NAME"),
    )


def parse_uptime(text: str, source: str = "uptime") -> float:
    toks = text.split()
    if not toks:
        raise ParseError(source, "empty")
    try:
        value = float(toks[0])
    except ValueError:
        raise ParseError(source, f"not a number: {toks[0][:32]!r}") from None
    if not 0 <= value < 1e10:
        raise ParseError(source, f"implausible uptime {value}")
    return value


# ---- sysctl dumps -------------------------------------------------------------
def sysctl_path_to_name(path: str) -> str:
    """`/proc/sys/net/ipv4/tcp_tw_reuse` -> `net.ipv4.tcp_tw_reuse` (dots in interface names become '/')."""
    rel = path[len("/proc/sys/") :] if path.startswith("/proc/sys/") else path
    return ".".join(part.replace(".", "/") for part in rel.strip("/").split("/"))


def fold_value(value: str) -> str:
    return " ".join(value.split())


def parse_grep_sysctls(text: str, source: str) -> dict[str, str]:
    """Output of `grep -r '' /proc/sys/net/...`: `PATH:VALUE` per line; multi-line files repeat the path."""
    parts: dict[str, list[str]] = {}  # joined once at the end: appending to a growing string is quadratic
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if not sep or not path.startswith("/proc/sys/"):
            continue
        parts.setdefault(sysctl_path_to_name(path), []).append(value)
    return {name: fold_value(" ".join(values)) for name, values in parts.items()}


def parse_sysctl_dump(text: str, source: str = "sysctl -a") -> dict[str, str]:
    """`sysctl -a` output (`key = value`); error lines and annotations without ' = ' are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        key = key.strip()
        if not sep or not key or " " in key or key.startswith(("#", ";")):
            continue
        out[key.replace("/", ".")] = fold_value(value)
    return out


# ---- ss -----------------------------------------------------------------------
_TIMER_RE = re.compile(r"timer:\((\w+),([^,)]*),(\d{1,10})\)")  # a longer retrans count is not ss output


def split_endpoint(token: str, source: str) -> tuple[str, int]:
    """`127.0.0.1:80`, `[::1]:80`, `[::ffff:1.2.3.4]:80`, `0.0.0.0:*`, `*:*`, `10.0.0.1%eth0:53`."""
    host, sep, port = token.rpartition(":")
    if not sep:
        raise ParseError(source, f"endpoint without a port: {token[:64]!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]
    if host == "*":
        host = "::" if token.startswith("[") else "0.0.0.0"
    if port == "*":
        return host, 0
    p = _int(port, source, "port")
    if not 0 <= p <= 65535:
        raise ParseError(source, f"port out of range: {p}")
    if not host or len(host) > 64:
        raise ParseError(source, f"bad address in {token[:64]!r}")
    return host, p


def _family(addr: str) -> int:
    return 6 if ":" in addr else 4


def parse_timer_ms(text: str) -> int | None:
    """ss timer expiry: `28sec`, `1min28sec`, `1.684ms`, `2h3min` -> milliseconds."""
    total = 0.0
    found = False
    for num, unit in re.findall(r"([\d.]+)(ms|sec|min|h|d)", text):
        try:
            v = float(num)
        except ValueError:
            return None
        total += v * {"ms": 1, "sec": 1000, "min": 60000, "h": 3600000, "d": 86400000}[unit]
        found = True
    return int(total) if found and total < 2**63 else None  # '9' * 400 + 'd' is inf ms, not a timer


def parse_ss_line(line: str, source: str, *, with_state: bool = True) -> Socket:
    toks = line.split()
    need = 5 if with_state else 4
    if len(toks) < need:
        raise ParseError(source, f"socket line has {len(toks)} fields, expected at least {need}")
    if with_state:
        state, toks = toks[0], toks[1:]
        if state not in STATE_NAMES:
            raise ParseError(source, f"unknown TCP state {state[:32]!r}")
    else:
        state = "ESTAB"
    recv_q = _uint(toks[0], source, "Recv-Q")
    send_q = _uint(toks[1], source, "Send-Q")
    laddr, lport = split_endpoint(toks[2], source)
    raddr, rport = split_endpoint(toks[3], source)
    timer = timer_ms = retrans = uid = inode = None
    for tok in toks[4:]:
        if tok.startswith("timer:("):
            m = _TIMER_RE.match(tok)
            if m:
                timer, timer_ms, retrans = m.group(1), parse_timer_ms(m.group(2)), int(m.group(3))
        elif tok.startswith("uid:"):
            uid = _uint(tok[4:], source, "uid")
        elif tok.startswith("ino:"):
            inode = _uint(tok[4:], source, "ino")
    if with_state and uid is None and inode is not None:
        uid = 0  # ss -e omits uid:0
    return Socket(
        _family(laddr),
        state,
        laddr,
        lport,
        raddr,
        rport,
        recv_q,
        send_q,
        timer,
        timer_ms,
        retrans,
        uid,
        inode,
        None,
        None,
    )


def parse_ss_table(text: str, source: str = "ss") -> list[Socket]:
    """`ss -tanoeH`: one socket per line. Continuation lines (tab-indented) are ignored."""
    out: list[Socket] = []
    append = out.append
    for n, line in enumerate(text.splitlines()):
        if not line or line[0] in " \t":
            continue
        if n == 0 and line.startswith(("State ", "Netid ")):
            continue  # a header from `ss` without -H
        append(parse_ss_line(line, source))
    return out


_LAST_RE = re.compile(r"\blast(snd|rcv):(\d{1,18})(?!\d)")  # more digits are no idle time in ms


def parse_ss_detail(
    text: str, source: str = "ss-detail", limit: int | None = None
) -> dict[tuple[str, int, str, int], tuple[int | None, int | None]]:
    """`ss -tinH state established`: header line, then a tab-indented info line with lastsnd/lastrcv (ms)."""
    out: dict[tuple[str, int, str, int], tuple[int | None, int | None]] = {}
    key: tuple[str, int, str, int] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] not in " \t":
            toks = line.split()
            if len(toks) < 4:
                raise ParseError(source, f"socket line has {len(toks)} fields, expected at least 4")
            laddr, lport = split_endpoint(toks[2], source)
            raddr, rport = split_endpoint(toks[3], source)
            key = (laddr, lport, raddr, rport)
            out[key] = (None, None)
            if limit is not None and len(out) > limit:
                del out[key]
                break
        elif key is not None:
            found = dict(_LAST_RE.findall(line))
            out[key] = (
                int(found["snd"]) if "snd" in found else None,
                int(found["rcv"]) if "rcv" in found else None,
            )
    return out


# ---- ss at scale: the same results, column-wise ---------------------------------
# A busy host has hundreds of thousands of sockets. These parsers give exactly what parse_ss_table and
# parse_ss_detail give, but build no Socket per line, memoise the pure parts (addresses, ports, queue
# sizes, timer tokens) and accept input in pieces, so the local collector parses while `ss` still prints.
# A line whose fields do not have the plain shape ss prints goes through the strict code, so odd and
# hostile input gets the same data or the same ParseError as before.
SS_COLUMNS = (
    "family",
    "state",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "recv_q",
    "send_q",
    "timer",
    "timer_ms",
    "retrans",
    "uid",
    "inode",
)
_STATE_OBJ = {s: s for s in STATE_NAMES}
_MEMO_MAX = 65536  # entries per memo table: bounded memory whatever the input


class _Memo:
    """Memo tables for one parse. A miss computes the value; None means "let the strict parser decide"."""

    def __init__(self) -> None:
        self.hosts: dict[str, tuple[str, int] | None] = {}
        self.ports: dict[str, int] = {}
        self.ints: dict[str, int] = {}
        self.timers: dict[str, tuple[str | None, int | None, int | None]] = {}

    @staticmethod
    def _store(table: dict, key: str, value: object) -> None:
        if len(table) >= _MEMO_MAX:
            table.clear()
        table[key] = value

    def host(self, host: str, token: str) -> tuple[str, int] | None:
        """split_endpoint's address normalisation of the host part: (address, family), None if invalid."""
        h = host
        if h.startswith("[") and h.endswith("]"):
            h = h[1:-1]
        h = h.split("%", 1)[0]
        if h == "*":
            h = "::" if token.startswith("[") else "0.0.0.0"
        out = (h, 6 if ":" in h else 4) if h and len(h) <= 64 else None
        self._store(self.hosts, host, out)
        return out

    def port(self, text: str) -> int | None:
        """Plain port numbers only ('*' is 0); anything else goes to the strict parser."""
        if text == "*":
            value = 0
        elif text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
            value = int(text)
        else:
            return None
        self._store(self.ports, text, value)
        return value

    def int32(self, text: str) -> int | None:
        """Plain non-negative numbers up to U64_MAX (_uint's limit); anything else goes to the strict parser."""
        if text.isascii() and text.isdigit() and len(text) <= 20:
            value = int(text)
            if value > U64_MAX:
                return None
            self._store(self.ints, text, value)
            return value
        return None

    def timer(self, tok: str) -> tuple[str | None, int | None, int | None] | None:
        m = _TIMER_RE.match(tok)
        if m is None:
            return None
        out = (m.group(1), parse_timer_ms(m.group(2)), int(m.group(3)))
        self._store(self.timers, tok, out)
        return out


class SsTableParser:
    """`ss -tanoeH` in pieces: feed() text that ends at a line break (or is the last piece), then columns()."""

    def __init__(self, source: str = "ss") -> None:
        self.source = source
        self.cols: dict[str, list] = {c: [] for c in SS_COLUMNS}
        self._memo = _Memo()
        self._first = True

    def feed(self, text: str) -> None:
        lines = text.splitlines()
        if self._first and lines:
            self._first = False
            if lines[0].startswith(("State ", "Netid ")):
                lines[0] = ""  # a header from `ss` without -H (parse_ss_table skips it on the first line only)
        memo = self._memo
        hosts, ports, ints, timers = memo.hosts, memo.ports, memo.ints, memo.timers
        states = _STATE_OBJ
        (a_fam, a_state, a_laddr, a_lport, a_raddr, a_rport, a_rq, a_sq, a_timer, a_tms, a_retr, a_uid, a_ino) = (
            appends
        ) = [col.append for col in self.cols.values()]
        for line in lines:
            if not line or line[0] in " \t":
                continue
            toks = line.split()
            try:
                state = states[toks[0]]
                rq, sq, ltok, rtok = toks[1], toks[2], toks[3], toks[4]
                lh, lsep, lp = ltok.rpartition(":")
                rh, rsep, rp = rtok.rpartition(":")
                lhost = hosts.get(lh) or memo.host(lh, ltok)
                rhost = hosts.get(rh) or memo.host(rh, rtok)
                lport = ports.get(lp)
                if lport is None:
                    lport = memo.port(lp)
                rport = ports.get(rp)
                if rport is None:
                    rport = memo.port(rp)
                recv_q = ints.get(rq)
                if recv_q is None:
                    recv_q = memo.int32(rq)
                send_q = ints.get(sq)
                if send_q is None:
                    send_q = memo.int32(sq)
                if (
                    lhost is None
                    or rhost is None
                    or lport is None
                    or rport is None
                    or recv_q is None
                    or send_q is None
                    or not lsep
                    or not rsep
                ):
                    raise ValueError
                timer = timer_ms = retrans = uid = inode = None
                for tok in toks[5:]:
                    c = tok[0]
                    if c == "t":
                        if tok.startswith("timer:("):
                            t = timers.get(tok) or memo.timer(tok)
                            if t is not None:
                                timer, timer_ms, retrans = t
                    elif c == "i":
                        if tok.startswith("ino:"):
                            if len(tok) > 24:  # "ino:" and 20 digits: U64_MAX has 20
                                raise ValueError
                            inode = 0 if tok == "ino:0" else int(tok[4:])
                            if inode > U64_MAX or inode < 0:
                                raise ValueError
                    elif c == "u" and tok.startswith("uid:"):
                        if len(tok) > 24:
                            raise ValueError
                        uid = int(tok[4:])
                        if uid > U64_MAX or uid < 0:
                            raise ValueError
            except (KeyError, IndexError, ValueError):
                for append, value in zip(appends, parse_ss_line(line, self.source), strict=False):
                    append(value)  # the strict parser: the same result, or its ParseError
                continue
            if uid is None and inode is not None:
                uid = 0  # ss -e omits uid:0
            a_fam(lhost[1])
            a_state(state)
            a_laddr(lhost[0])
            a_lport(lport)
            a_raddr(rhost[0])
            a_rport(rport)
            a_rq(recv_q)
            a_sq(send_q)
            a_timer(timer)
            a_tms(timer_ms)
            a_retr(retrans)
            a_uid(uid)
            a_ino(inode)

    def columns(self) -> dict[str, list]:
        return self.cols


def parse_ss_columns(text: str, source: str = "ss") -> dict[str, list]:
    """`ss -tanoeH` -> {column: list} (SS_COLUMNS): the sockets parse_ss_table returns, column-wise."""
    p = SsTableParser(source)
    p.feed(text)
    return p.columns()


def _last_fields(line: str) -> tuple[int | None, int | None]:
    """lastsnd/lastrcv of an ss -i info line, as dict(_LAST_RE.findall(line)) gives them."""
    out: list[int | None] = []
    for name in ("lastsnd:", "lastrcv:"):
        i = line.find(name)
        if i < 0:
            out.append(None)
            continue
        if line.find(name, i + 8) >= 0 or (i and (line[i - 1].isalnum() or line[i - 1] == "_")):
            found = dict(_LAST_RE.findall(line))  # repeated or glued to a word: the regex decides
            return (int(found["snd"]) if "snd" in found else None, int(found["rcv"]) if "rcv" in found else None)
        m = _LAST_RE.match(line, i)
        out.append(int(m.group(2)) if m else None)
    return out[0], out[1]


_LAST_PAIR_RE = re.compile(r" lastsnd:(\d{1,18}) lastrcv:(\d{1,18}) lastack:")


class SsDetailParser:
    """`ss -tinH state established` in pieces; result() is what parse_ss_detail gives for the whole text."""

    def __init__(self, source: str = "ss-detail", limit: int | None = None) -> None:
        self.source = source
        self.limit = limit
        self.out: dict[tuple[str, int, str, int], tuple[int | None, int | None]] = {}
        self.done = False  # the limit was reached: further input is ignored, as parse_ss_detail stops there
        self._key: tuple[str, int, str, int] | None = None
        self._memo = _Memo()

    def feed(self, text: str) -> None:
        if self.done:
            return
        out, limit, memo = self.out, self.limit, self._memo
        hosts, ports = memo.hosts, memo.ports
        pair = _LAST_PAIR_RE.search
        key = self._key
        for line in text.splitlines():
            c = line[:1]
            if c == " " or c == "\t":
                if key is not None and not line.isspace():
                    # The plain case: "last" occurs only in lastsnd, lastrcv and lastack, in that order, so
                    # each name is there once, after a space, with at most 18 digits: what _LAST_RE finds.
                    m = pair(line) if line.count("last") == 3 else None
                    out[key] = (int(m.group(1)), int(m.group(2))) if m is not None else _last_fields(line)
                continue
            if not line or line.isspace():
                continue
            toks = line.split()
            try:
                ltok, rtok = toks[2], toks[3]
                lh, lsep, lp = ltok.rpartition(":")
                rh, rsep, rp = rtok.rpartition(":")
                lhost = hosts.get(lh) or memo.host(lh, ltok)
                rhost = hosts.get(rh) or memo.host(rh, rtok)
                lport = ports.get(lp)
                if lport is None:
                    lport = memo.port(lp)
                rport = ports.get(rp)
                if rport is None:
                    rport = memo.port(rp)
                if lhost is None or rhost is None or lport is None or rport is None or not lsep or not rsep:
                    raise ValueError
                key = (lhost[0], lport, rhost[0], rport)
            except (IndexError, ValueError):
                if len(toks) < 4:
                    raise ParseError(self.source, f"socket line has {len(toks)} fields, expected at least 4") from None
                laddr, lport = split_endpoint(toks[2], self.source)
                raddr, rport = split_endpoint(toks[3], self.source)
                key = (laddr, lport, raddr, rport)
            out[key] = (None, None)
            if limit is not None and len(out) > limit:
                del out[key]
                self.done = True
                break
        self._key = key

    def result(self) -> dict[tuple[str, int, str, int], tuple[int | None, int | None]]:
        return self.out


def parse_ss_detail_fast(
    text: str, source: str = "ss-detail", limit: int | None = None
) -> dict[tuple[str, int, str, int], tuple[int | None, int | None]]:
    """parse_ss_detail, faster: the same mapping, or the same ParseError."""
    p = SsDetailParser(source, limit)
    p.feed(text)
    return p.result()


# ---- /proc/net/tcp{,6} --------------------------------------------------------
_PROC_TIMERS = {0: None, 1: "on", 2: "keepalive", 3: "timewait", 4: "persist"}


def _hex_addr(text: str, source: str) -> tuple[str, int]:
    addr, sep, port = text.partition(":")
    if not sep:
        raise ParseError(source, f"bad address {text[:64]!r}")
    try:
        p = int(port, 16)
        raw = bytes.fromhex(addr)
    except ValueError:
        raise ParseError(source, f"bad hex address {text[:64]!r}") from None
    if not 0 <= p <= 65535:
        raise ParseError(source, f"port out of range in {text[:64]!r}")
    if len(raw) == 4:
        import socket as _s

        return _s.inet_ntop(_s.AF_INET, raw[::-1]), p
    if len(raw) == 16:
        import socket as _s

        # four host-order 32-bit words
        fixed = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return _s.inet_ntop(_s.AF_INET6, fixed), p
    raise ParseError(source, f"address of {len(raw)} bytes")


def parse_proc_net_tcp(text: str, source: str = "/proc/net/tcp", user_hz: int = 100) -> list[Socket]:
    out: list[Socket] = []
    for n, line in enumerate(text.splitlines(), 1):
        toks = line.split()
        if not toks or toks[0] == "sl":
            continue
        if len(toks) < 10:
            raise ParseError(source, f"line {n}: {len(toks)} fields, expected at least 10")
        laddr, lport = _hex_addr(toks[1], source)
        raddr, rport = _hex_addr(toks[2], source)
        if any(len(x) > 16 for tok in toks[3:7] for x in tok.split(":")):  # the kernel prints 2 to 8 digits
            raise ParseError(source, f"line {n}: a hex field of more than 16 digits")
        try:
            st = int(toks[3], 16)
            txq, rxq = (int(x, 16) for x in toks[4].split(":"))
            tr, when = (int(x, 16) for x in toks[5].split(":"))
            retr = int(toks[6], 16)
        except ValueError:
            raise ParseError(source, f"line {n}: bad hex field") from None
        state = TCP_STATES.get(st)
        if state is None:
            raise ParseError(source, f"line {n}: unknown state {st}")
        uid = _uint(toks[7], source, "uid")
        inode = _uint(toks[9], source, "inode")
        timer = _PROC_TIMERS.get(tr)
        out.append(
            Socket(
                _family(laddr),
                state,
                laddr,
                lport,
                raddr,
                rport,
                rxq,
                txq,
                timer,
                when * 1000 // user_hz if timer else None,
                retr,
                uid,
                inode,
                None,
                None,
            )
        )
    return out


# ---- iptables-save -t nat -----------------------------------------------------
def nat_redirect_rules(text: str, limit: int = 200) -> list[str]:
    rules = []
    for line in text.splitlines():
        if line.startswith("-A ") and (" -j REDIRECT" in line or " -j DNAT" in line):
            rules.append(line[:MAX_FIELD_LEN])
            if len(rules) >= limit:
                break
    return rules
