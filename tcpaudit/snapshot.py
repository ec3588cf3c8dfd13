"""The Snapshot: everything known about one host at one moment.

It is the only thing rules ever see. The local collector, the SSH collector and
`tcpaudit audit FILE` all produce one; it round-trips through JSON, and that JSON
is also the fixture format of the tests.

The socket table is stored column-wise: a busy host has hundreds of thousands of
sockets, and one pydantic object per socket costs seconds where a column of ints
costs milliseconds.
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from itertools import compress
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from .model import NetnsInfo

SCHEMA_VERSION = 1

# Bounds on numbers read from a snapshot file. The kernel's counters, limits and queue lengths are at most
# 64-bit: a file with 10**400 in one of them, or NaN/Infinity, is corrupt, and would otherwise load and then
# crash the rules' arithmetic (int -> float overflow, NaN comparisons).
U64_MAX = 2**64 - 1
S64_MIN = -(2**63)
Unsigned = Annotated[int, Field(ge=0, le=U64_MAX)]  # a value the kernel keeps unsigned (u32/u64)
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(ge=0, le=U64_MAX, allow_inf_nan=False)]


# /proc/net/snmp has signed fields (Tcp.MaxConn is -1), so a counter may be negative. The collectors' parsers
# bound their tokens the same way (tcpaudit.collect.parsers._int), so a table that parsed also loads again.
Counter64 = Annotated[int, Field(ge=S64_MIN, le=U64_MAX)]

# ss(8) state names; /proc/net/tcp state codes map onto them (include/net/tcp_states.h).
TCP_STATES = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",  # TCP_NEW_SYN_RECV: request sockets, shown by ss as SYN-RECV
}
STATE_NAMES = frozenset(TCP_STATES.values())


class Source(str, Enum):
    local = "local"
    ssh = "ssh"
    file = "file"


class GapReason(str, Enum):
    permission_denied = "permission_denied"
    missing = "missing"
    unsupported = "unsupported"
    truncated = "truncated"
    timeout = "timeout"
    error = "error"


class CollectionGap(BaseModel):
    """One thing the collector could not read, and why. Nothing is dropped silently."""

    model_config = ConfigDict(frozen=True)
    item: str
    reason: GapReason
    detail: str = ""


class Distro(BaseModel):
    id: str | None = None
    id_like: str | None = None
    version_id: str | None = None
    pretty_name: str | None = None


class KernelInfo(BaseModel):
    release: str
    version: str | None = Field(None, description="parsed upstream version, e.g. 5.14.21; null if unparsable")
    proc_version: str | None = Field(
        None,
        description="/proc/version (it ends with `uname -v`: Debian's states the stable release, '... Debian "
        "6.1.76-1 (2024-02-01)'); null if not collected",
    )
    version_signature: str | None = Field(
        None, description="Ubuntu's /proc/version_signature ('Ubuntu 5.15.0-91.101-generic 5.15.131'); null if absent"
    )


class ConntrackInfo(BaseModel):
    present: bool = False
    count: Unsigned | None = None
    max: Unsigned | None = None
    stats_per_cpu: list[dict[str, Unsigned]] = Field(default_factory=list)

    def stat_total(self, name: str) -> int | None:
        if not self.stats_per_cpu:
            return None
        return sum(row.get(name, 0) for row in self.stats_per_cpu)


class Counters(BaseModel):
    """Kernel counters: /proc/net/netstat, /proc/net/snmp (group -> name -> value), /proc/net/sockstat{,6}."""

    netstat: dict[str, dict[str, Counter64]] = Field(default_factory=dict)
    snmp: dict[str, dict[str, Counter64]] = Field(default_factory=dict)
    sockstat: dict[str, dict[str, Counter64]] = Field(default_factory=dict)

    def get(self, name: str) -> int | None:
        """`TcpExt.PAWSPassive`, `Tcp.AttemptFails`, `TCP.tw` (sockstat)."""
        group, _, field = name.partition(".")
        for table in (self.netstat, self.snmp, self.sockstat):
            if group in table and field in table[group]:
                return table[group][field]
        return None


class CounterSample(BaseModel):
    """An earlier sample of the counters, for rates (`--sample SECONDS`)."""

    interval_s: Seconds
    counters: Counters
    conntrack_stats_per_cpu: list[dict[str, Unsigned]] = Field(default_factory=list)


class Environment(BaseModel):
    cloud: str | None = Field(None, description="aws, azure, gcp, ... from /sys/class/dmi/id")
    kubernetes: bool | None = None
    container: str | None = Field(None, description="docker, podman, kubernetes, lxc, ... or null")
    nat_rules: list[str] | None = Field(None, description="iptables nat REDIRECT/DNAT rules; null if unreadable")
    hints: list[str] = Field(default_factory=list, description="how each of the above was decided")


class Socket(NamedTuple):
    family: int
    state: str
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    recv_q: int
    send_q: int
    timer: str | None
    timer_ms: int | None
    retrans: int | None
    uid: int | None
    inode: int | None
    lastsnd_ms: int | None
    lastrcv_ms: int | None


_COLUMNS = Socket._fields


class SocketTable(BaseModel):
    """The TCP socket table, column-wise. Row i is `table.row(i)`.

    `total` counts every socket the kernel reported; when the collector caps the
    table (remote hosts with huge tables) `len(table) < total` and `state_counts`
    still covers all of them.
    """

    source: str = Field("none", description="netlink (sock_diag, read locally), ss, proc, or none")
    total: Unsigned = 0
    state_counts: dict[str, Unsigned] = Field(default_factory=dict)
    detail: str = Field(
        "none",
        description="where keepalive/idle detail came from: netlink or ss-i (complete), ss-i-partial, none",
    )
    family: list[Unsigned] = Field(default_factory=list)
    state: list[str] = Field(default_factory=list)
    local_addr: list[str] = Field(default_factory=list)
    local_port: list[Port] = Field(default_factory=list)
    remote_addr: list[str] = Field(default_factory=list)
    remote_port: list[Port] = Field(default_factory=list)
    recv_q: list[Unsigned] = Field(default_factory=list)
    send_q: list[Unsigned] = Field(default_factory=list)
    timer: list[str | None] = Field(default_factory=list)
    timer_ms: list[Unsigned | None] = Field(default_factory=list)
    retrans: list[Unsigned | None] = Field(default_factory=list)
    uid: list[Unsigned | None] = Field(default_factory=list)
    inode: list[Unsigned | None] = Field(default_factory=list)
    lastsnd_ms: list[Unsigned | None] = Field(default_factory=list)
    lastrcv_ms: list[Unsigned | None] = Field(default_factory=list)
    _state_rows: Any = PrivateAttr(default=None)  # (state column, its length, {state: row numbers})

    @model_validator(mode="after")
    def _same_length(self) -> SocketTable:
        n = len(self.family)
        for col in _COLUMNS:
            if len(getattr(self, col)) != n:
                raise ValueError(f"socket table column {col!r} has {len(getattr(self, col))} rows, expected {n}")
        return self

    def __len__(self) -> int:
        return len(self.family)

    @property
    def listen_queues(self) -> bool:
        """LISTEN rows carry the accept queue (recv_q) and its limit (send_q), as sock_diag reports them;
        /proc/net/tcp has no limit."""
        return self.source in ("netlink", "ss")

    @property
    def detail_complete(self) -> bool:
        """Every ESTAB row has its idle times (lastsnd/lastrcv) where the kernel reported them."""
        return self.detail in ("netlink", "ss-i")

    def rows(self, *states: str) -> Iterator[Socket]:
        """Every row, or only the rows in `states` (table order): rules that look at LISTEN or ESTAB sockets
        do not pay for the 10^5 TIME-WAIT rows of a busy host."""
        cols = [getattr(self, c) for c in _COLUMNS]
        if not states:
            return map(Socket._make, zip(*cols, strict=True))
        idx = self.indices(*states)
        return map(Socket._make, zip(*(map(col.__getitem__, idx) for col in cols), strict=False))

    def indices(self, *states: str) -> list[int]:
        """Row numbers of the sockets in `states`, in table order (computed once per state, then cached)."""
        state = self.state
        cache = self._state_rows
        if cache is None or cache[0] is not state or cache[1] != len(state):
            cache = self._state_rows = (state, len(state), {})
        index = cache[2]
        for s in states:
            if s not in index:
                index[s] = list(compress(range(len(state)), map(s.__eq__, state)))
        if len(states) == 1:
            return index[states[0]]
        return sorted(i for s in set(states) for i in index[s])

    def row(self, i: int) -> Socket:
        return Socket(*(getattr(self, c)[i] for c in _COLUMNS))

    @classmethod
    def from_rows(cls, rows: list[Socket] | list[tuple[Any, ...]], **kw: Any) -> SocketTable:
        cols: dict[str, Any] = {c: [] for c in _COLUMNS}
        appenders = [cols[c].append for c in _COLUMNS]
        for r in rows:
            for append, value in zip(appenders, r, strict=True):
                append(value)
        counts: dict[str, int] = {}
        for s in cols["state"]:
            counts[s] = counts.get(s, 0) + 1
        kw.setdefault("total", len(cols["family"]))
        kw.setdefault("state_counts", counts)
        return cls(**cols, **kw)

    @classmethod
    def from_columns(cls, cols: dict[str, list[Any]], **kw: Any) -> SocketTable:
        """Columns a tcpaudit parser built (right types by construction): only the lengths are checked.

        Per-element validation of 15 columns costs about a second at 200,000 sockets; a table from
        JSON (load_snapshot_json) is still validated in full.
        """
        n = len(cols["family"])
        for col in _COLUMNS:
            if len(cols[col]) != n:
                raise ValueError(f"socket table column {col!r} has {len(cols[col])} rows, expected {n}")
        kw.setdefault("total", n)
        kw.setdefault("state_counts", dict(Counter(cols["state"])))
        return cls.model_construct(**{c: cols[c] for c in _COLUMNS}, **kw)  # type: ignore[arg-type]  # checked above


class PersistedAssignment(BaseModel):
    value: str
    file: str
    line: int | None = None


class PersistedSetting(BaseModel):
    """The value a key gets from the sysctl configuration at boot, where, and the earlier lines it overrides."""

    value: str
    file: str
    line: int | None = None
    ignore_errors: bool = Field(default=False, description="written with a leading '-': a failure to set it is ignored")
    shadowed: list[PersistedAssignment] = Field(
        default_factory=list, description="earlier assignments of the same key that this one overrides"
    )


class PersistedConfig(BaseModel):
    """The host's sysctl configuration as `sysctl --system` applies it (tcpaudit.collect.persisted)."""

    files: list[str] = Field(default_factory=list, description="the files applied, in order")
    settings: dict[str, PersistedSetting] = Field(default_factory=dict, description="key -> effective setting")
    notes: list[str] = Field(default_factory=list, description="files hidden by a same-named file, masked, dangling")
    complete: bool = Field(
        default=True, description="false when a file could not be read or was cut at the cap (see gaps)"
    )


class Snapshot(BaseModel):
    # strict: the published schema says integer, so "1" (a string) is not a version
    schema_version: int = Field(SCHEMA_VERSION, strict=True, ge=1, le=U64_MAX)
    hostname: str
    collected_at: _dt.datetime
    source: Source
    collector: str = Field("", description="tool and version that collected it")
    kernel: KernelInfo
    distro: Distro = Field(default_factory=Distro)
    uptime_s: Seconds | None = None
    sysctls: dict[str, str] = Field(
        default_factory=dict, description="net.ipv4.*, net.ipv6.*, net.core.*, net.netfilter.* (raw, whitespace folded)"
    )
    sysctl_roots: list[str] = Field(
        default_factory=list, description="sysctl trees that were read; a key outside them is unknown, not absent"
    )
    conntrack: ConntrackInfo = Field(default_factory=ConntrackInfo)
    counters: Counters = Field(default_factory=Counters)
    previous: CounterSample | None = None
    sockets: SocketTable = Field(default_factory=SocketTable)
    environment: Environment = Field(default_factory=Environment)
    gaps: list[CollectionGap] = Field(default_factory=list)
    netns: NetnsInfo | None = Field(
        None, description="the network namespace this snapshot was read in (--all-netns); null: the host's own"
    )
    init_net_sysctls: dict[str, str] | None = Field(
        None,
        description="--all-netns, for a namespace other than the host's: the initial namespace's values of the "
        "per-namespace keys read here, so rules can tell host tuning that does not reach the namespace",
    )
    persisted: PersistedConfig | None = Field(
        default=None, description="the sysctl configuration files in `sysctl --system` order; null: not read"
    )

    @model_validator(mode="after")
    def _check_version(self) -> Snapshot:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"snapshot schema_version {self.schema_version} is newer than this tcpaudit understands "
                f"({SCHEMA_VERSION}); upgrade tcpaudit"
            )
        return self

    # ---- typed accessors -------------------------------------------------
    def has_sysctl(self, name: str) -> bool | None:
        """True/False when the tree holding `name` was read; None when it was not."""
        if name in self.sysctls:
            return True
        if any(name.startswith(root + ".") for root in self.sysctl_roots):
            return False
        return None

    def sysctl(self, name: str) -> str | None:
        return self.sysctls.get(name)

    def sysctl_int(self, name: str) -> int | None:
        ints = self.sysctl_ints(name)
        return ints[0] if ints and len(ints) == 1 else None

    def sysctl_ints(self, name: str) -> list[int] | None:
        raw = self.sysctls.get(name)
        if raw is None:
            return None
        try:
            return [int(x) for x in raw.split()]
        except ValueError:
            return None

    def port_range(self) -> tuple[int, int] | None:
        ints = self.sysctl_ints("net.ipv4.ip_local_port_range")
        if not ints or len(ints) != 2:
            return None
        return ints[0], ints[1]

    def reserved_ports(self) -> set[int]:
        return parse_port_list(self.sysctls.get("net.ipv4.ip_local_reserved_ports", ""))

    def gap(self, item_prefix: str) -> CollectionGap | None:
        for g in self.gaps:
            if g.item == item_prefix or g.item.startswith(item_prefix):
                return g
        return None


def parse_port_list(text: str) -> set[int]:
    """`ip_local_reserved_ports` syntax: `8080,9000-9010` (kernel proc_do_large_bitmap)."""
    ports: set[int] = set()
    for part in text.replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            continue
        if 0 <= a <= b <= 65535:
            ports.update(range(a, b + 1))
    return ports


@functools.lru_cache(maxsize=65536)  # called per socket by rules; a busy host has few distinct peers
def is_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def load_snapshot_json(text: str | bytes) -> Snapshot:
    return Snapshot.model_validate_json(text)
