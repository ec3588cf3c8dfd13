"""SYS005: TCP socket-memory vectors (tcp_mem, tcp_rmem, tcp_wmem) out of order or absurd."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

TCP_MEM = "net.ipv4.tcp_mem"
TCP_RMEM = "net.ipv4.tcp_rmem"
TCP_WMEM = "net.ipv4.tcp_wmem"

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
# tcp_mem counts pages. The snapshot does not record the page size; 4 KiB is x86-64 and most arm64 builds.
PAGE = 4 * KIB
# tcp_init_mem() (net/ipv4/tcp.c 0076cad30135): limit = nr_free_buffer_pages() / 16; min = limit / 4 * 3,
# pressure = limit, max = 2 * min. A pressure of P pages is therefore the kernel's own default on a machine
# with about 16 * P pages of free memory, and a triple of exactly that shape is a computed default.
DEFAULT_SHARE = 16
SMALL_MACHINE = 16 * GIB  # a tcp_mem pressure below the default of this much RAM is "small for a big box"
LARGE_MACHINE = 1 * TIB  # ... above the default of this much RAM: pressure never comes on a smaller machine
NO_LIMIT = 4 * TIB  # a hard limit above what servers have is no limit at all
# Per-socket minimum (tcp_rmem[0] / tcp_wmem[0]): the default is one page (ip-sysctl.rst: "Default: 4K").
MIN_MEDIUM = 1 * MIB
MIN_HIGH = 16 * MIB
USAGE_WARN = 0.8  # /proc/net/sockstat TCP mem against the pressure threshold
# A per-socket default above this is itself suspicious (the kernel's are 128 KiB receive, 16 KiB send).
BIG_DEFAULT = 4 * MIB
KERNEL_DEFAULT = {TCP_RMEM: 131072, TCP_WMEM: 16384}


def _size(n: float) -> str:
    for unit, name in ((TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n >= unit:
            v = n / unit
            return f"{v:.0f} {name}" if v >= 10 or v == int(v) else f"{v:.1f} {name}"
    return f"{n:.0f} bytes"


def _judged(f: Facts, key: str) -> tuple[Value, list[int]] | None:
    """The three fields to judge: what the file sets (config) or what the host runs (host)."""
    v = f.value(key)
    if v.origin != ("config" if f.kind == "config" else "host"):
        return None
    ints = v.ints
    if ints is None or len(ints) != 3:
        return None  # SYS002 reports values the kernel rejects; fewer fields leave the rest unknown
    return v, ints


def _computed_default_shape(lo: int, pr: int, hi: int) -> bool:
    return pr >= 128 and lo == pr // 4 * 3 and hi == 2 * lo  # tcp_init_mem(): limit = max(limit, 128UL)


def _worst(a: Severity | None, b: Severity) -> Severity:
    return b if a is None or b.rank > a.rank else a


class TcpMemoryVectors(Rule):
    meta = RuleMeta(
        id="SYS005",
        title="TCP socket-memory limits (tcp_mem, tcp_rmem, tcp_wmem) out of order, absurd or too small",
        severity=Severity.medium,
        keys=[TCP_MEM, TCP_RMEM, TCP_WMEM],
        summary=(
            "net.ipv4.tcp_mem (pages: min, pressure, max for all TCP sockets together) and net.ipv4.tcp_rmem / "
            "tcp_wmem (bytes per socket: min, default, max) are written as three numbers that the kernel applies "
            "one by one without checking their order. Tuning guides copy vectors that are out of order, give every "
            "socket a minimum of tens of megabytes, or set TCP-wide limits far above or below the machine's "
            "memory: TCP then either never backs off before the host runs out of memory, or prunes buffers and "
            "refuses memory long before it has to."
        ),
        mechanism=[
            "Every TCP buffer allocation goes through __sk_mem_raise_allocated() (net/core/sock.c). While the "
            "TCP-wide total is at most tcp_mem[0] pages it succeeds at once; above tcp_mem[1] TCP enters memory "
            "pressure (TcpExt.TCPMemoryPressures); above tcp_mem[2] the allocation is suppressed.",
            "The checks run in that order and the sysctl accepts any three numbers (proc_doulongvec_minmax "
            "without bounds), so with min above pressure, pressure only starts above min, and with max below min "
            "the hard limit is effectively min: the vector does not mean what it says.",
            "Under memory pressure (and below the hard limit) an allocation still succeeds while the socket holds "
            "less than its minimum - tcp_rmem[0] of receive data, tcp_wmem[0] of queued send data (ip-sysctl.rst: "
            "'guaranteed to each TCP socket, even under moderate memory pressure') - or less than its fair share "
            "of tcp_mem[2] (the hard limit divided by the number of TCP sockets); otherwise it is refused. A "
            "minimum of tens of megabytes makes pressure mode unable to hold anything back: a few thousand "
            "connections pin hundreds of gigabytes.",
            "tcp_mem is computed at boot as about 4.7 %, 6.25 % and 9.4 % of RAM (tcp_init_mem()). Values far "
            "above that switch the back-off off (buffers grow until the OOM killer acts); values far below make "
            "TCP prune receive queues, clamp windows and fail sends on a big machine that has memory to spare.",
            "In pressure mode receive buffers stop growing (tcp_clamp_window() raises sk_rcvbuf only below "
            "tcp_mem[0] and outside pressure) and allocations beyond the minimum or fair share fail; above the "
            "hard limit tcp_check_oom() also resets orphaned connections with unsent data ('out of memory -- "
            "consider tuning tcp_mem', TcpExt.TCPAbortOnMemory): throughput drops and connections are lost under "
            "load, far from the setting that caused it.",
        ],
        when_it_matters=(
            "Hosts with many connections or large buffers (proxies, load generators, storage and database nodes) "
            "that copied 'TCP optimization' snippets; small limits matter on machines with far more RAM than the "
            "value assumes, absurd minimums and out-of-order vectors everywhere."
        ),
        remediation=(
            "Remove tcp_mem from the configuration and let the kernel size it from RAM; if you must set it, keep "
            "min <= pressure <= max and check /proc/net/sockstat 'TCP ... mem' and TcpExt.TCPMemoryPressures under "
            "real load. For tcp_rmem / tcp_wmem keep min <= default <= max, leave min at 4096 (one page) and raise "
            "only the max field for long fat paths."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_mem, tcp_rmem, tcp_wmem",
                url="https://docs.kernel.org/networking/ip-sysctl.html",
            ),
            Reference(
                title="net/core/sock.c __sk_mem_raise_allocated(): limits, pressure, minimum under pressure",
                url="https://github.com/torvalds/linux/blob/master/net/core/sock.c",
            ),
            Reference(
                title="net/ipv4/tcp.c tcp_init_mem() and tcp_init(): the defaults computed from RAM",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp.c",
            ),
            Reference(
                title="net/ipv4/proc.c: /proc/net/sockstat 'TCP: ... mem' is the TCP total in pages",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/proc.c",
            ),
        ],
    )

    def check(self, f: Facts):
        mem, rmem, wmem = _judged(f, TCP_MEM), _judged(f, TCP_RMEM), _judged(f, TCP_WMEM)
        if mem is None and rmem is None and wmem is None:
            if f.kind == "config":
                return self.na("the configuration sets none of tcp_mem, tcp_rmem, tcp_wmem as three numbers")
            return self.na("tcp_mem, tcp_rmem and tcp_wmem are not known for this host")
        hard = max(mem[1][0], mem[1][2]) if mem is not None else None
        out = []
        if mem is not None:
            out.append(self._tcp_mem(f, *mem))
        for key, vec in ((TCP_RMEM, rmem), (TCP_WMEM, wmem)):
            if vec is not None:
                out.append(self._buffers(f, key, *vec, hard_pages=hard))
        return [x for x in out if x is not None] or None

    # ---- tcp_mem ------------------------------------------------------------------------------------------
    def _tcp_mem(self, f: Facts, v: Value, vec: list[int]):
        lo, pr, hi = vec
        pressure, hard = max(lo, pr), max(lo, hi)  # what the kernel's checks make of the three numbers
        ev: dict = {
            "tcp_mem_pages": vec,
            "page_size_assumed": PAGE,
            "bytes": {"min": lo * PAGE, "pressure": pr * PAGE, "max": hi * PAGE},
            "effective_pressure_pages": pressure,
            "effective_hard_limit_pages": hard,
        }
        parts: list[str] = []
        sev: Severity | None = None
        fix: dict[str, str] = {}
        ctx = ["tcp_mem is in pages, read as 4 KiB pages (x86-64, most arm64); 64 KiB-page kernels mean 16x more"]

        if not lo <= pr <= hi:
            sev = Severity.medium
            ev["out_of_order"] = True
            parts.append(
                f"tcp_mem = {lo} {pr} {hi} ({v.where()}) is out of order (min, pressure, max must not "
                "decrease), and the kernel does not check it."
            )
            if lo > pr:
                parts.append(
                    f"min {lo} > pressure {pr}: __sk_mem_raise_allocated() returns early while TCP "
                    f"holds no more than min, so memory pressure only starts above {lo} pages "
                    f"({_size(lo * PAGE)}), not at {pr}."
                )
            if hi < lo:
                parts.append(
                    f"max {hi} < min {lo}: allocations up to min are granted without looking at max, so "
                    f"the hard limit is effectively {lo} pages ({_size(lo * PAGE)}), while tcp_check_oom() "
                    f"already resets orphaned connections with unsent data above {hi} ('out of memory -- "
                    "consider tuning tcp_mem')."
                )
            elif hi < pr:
                parts.append(
                    f"max {hi} < pressure {pr}: allocations fail at the hard limit before TCP ever enters "
                    "memory pressure, so sockets are refused memory without the gradual back-off that "
                    "pressure mode gives."
                )

        default_shape = _computed_default_shape(lo, pr, hi)
        if default_shape:
            ctx.append(
                f"tcp_mem has the shape of the kernel's computed default (min = pressure/4*3, max = 2*min): "
                f"about {_size(pr * PAGE * DEFAULT_SHARE)} of RAM"
            )
        elif hard * PAGE > NO_LIMIT:
            sev = _worst(sev, Severity.medium)
            parts.append(
                f"The hard limit is {hard} pages ({_size(hard * PAGE)}), more memory than servers have: "
                "TCP memory is effectively unlimited, so socket buffers can take all RAM and the OOM "
                "killer acts instead of TCP backing off."
            )
        elif pressure * PAGE * DEFAULT_SHARE > LARGE_MACHINE:
            sev = _worst(sev, Severity.low)
            parts.append(
                f"Memory pressure starts at {pressure} pages ({_size(pressure * PAGE)}) and the hard limit "
                f"is {_size(hard * PAGE)}: that is the kernel's own default for a machine with about "
                f"{_size(pressure * PAGE * DEFAULT_SHARE)} of RAM (pressure = 1/16 of free memory). On "
                f"a machine with less than {_size(pressure * PAGE)} of memory TCP never enters pressure "
                f"mode, and the hard limit binds only above {_size(hard * PAGE)}: socket buffers can take "
                "all RAM and the OOM killer acts instead of TCP backing off."
            )
        elif pressure * PAGE * DEFAULT_SHARE < SMALL_MACHINE:
            sev = _worst(sev, Severity.info)
            ev["default_for_ram"] = pressure * PAGE * DEFAULT_SHARE
            parts.append(
                f"Memory pressure starts at {pressure} pages ({_size(pressure * PAGE)}) and allocations "
                f"fail at {hard} pages ({_size(hard * PAGE)}). That is the kernel's own default for a "
                f"machine with about {_size(pressure * PAGE * DEFAULT_SHARE)} of RAM; on a bigger machine "
                f"it lowers TCP's budget: once all sockets together hold {_size(pressure * PAGE)}, TCP "
                "enters memory pressure, buffers stop growing and allocations beyond a socket's minimum or "
                "fair share fail. Whether that is too small depends on the RAM and the load, which the "
                "setting alone does not tell."
            )

        if f.kind == "host":
            sev = self._host_evidence(f, pressure, ev, parts, sev)
        if sev is None:
            return None
        if sev is Severity.info:
            ctx.append("RAM not known: a note, not a finding, unless the host's counters show memory pressure")
        if ev.get("out_of_order") and pressure * PAGE * DEFAULT_SHARE <= LARGE_MACHINE and hard * PAGE <= NO_LIMIT:
            fix[TCP_MEM] = " ".join(str(x) for x in sorted(vec))
        return self.finding(
            f, severity=sev, keys=[TCP_MEM], evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts)
        )

    def _host_evidence(self, f: Facts, pressure: int, ev: dict, parts: list[str], sev: Severity | None):
        now = f.snapshot.counters.get("TCP.mem")  # /proc/net/sockstat: pages TCP holds right now
        pressures = f.counter_evidence("TcpExt.TCPMemoryPressures")
        rate = f.counter_rate("TcpExt.TCPMemoryPressures") or 0.0
        if now is not None:
            ev["sockstat_mem_pages"] = now
            ev["usage_of_pressure"] = round(now / pressure, 3) if pressure > 0 else None
        if pressures is not None:
            ev["TCPMemoryPressures"] = pressures
        total = (pressures or {}).get("total_since_boot", 0)
        if rate > 0 or (now is not None and now >= pressure > 0):
            parts.append(
                f"TCP holds {now} pages now against a pressure threshold of {pressure}"
                + (f" and entered memory pressure {rate:.1f} times/s during the sample" if rate > 0 else "")
                + ": TCP is under memory pressure on this host now (buffers stop growing; allocations "
                "beyond a socket's minimum or fair share fail)."
            )
            return _worst(sev, Severity.medium)
        if total > 0:
            parts.append(
                f"TcpExt.TCPMemoryPressures = {total} since boot: TCP has run into this limit on this "
                "host (each time buffers stopped growing and allocations beyond a socket's minimum or fair "
                "share failed)."
            )
            return _worst(sev, Severity.low)
        if now is not None and pressure > 0 and now >= USAGE_WARN * pressure:
            parts.append(f"TCP holds {now} pages now, {now / pressure:.0%} of the pressure threshold ({pressure}).")
            return _worst(sev, Severity.low)
        return sev

    # ---- tcp_rmem / tcp_wmem ------------------------------------------------------------------------------
    def _buffers(self, f: Facts, key: str, v: Value, vec: list[int], hard_pages: int | None):
        lo, dflt, hi = vec
        name = key.rsplit(".", 1)[1]
        what = "receive" if key == TCP_RMEM else "send"
        held = "receive queue" if key == TCP_RMEM else "queued send data"
        ev: dict = {name: vec}
        parts: list[str] = []
        sev: Severity | None = None
        if not lo <= dflt <= hi:
            sev = Severity.medium
            ev["out_of_order"] = True
            parts.append(
                f"{name} = {lo} {dflt} {hi} ({v.where()}) is out of order (min, default, max must not "
                "decrease); the kernel applies each field as written."
            )
            if dflt > hi:
                parts.append(
                    f"Every socket starts with a {dflt}-byte {what} buffer, larger than the {hi} bytes "
                    "autotuning may grow to, so the max field does not cap it."
                )
            if lo > dflt:
                parts.append(
                    f"Under memory pressure each socket is still granted {lo} bytes, more than the "
                    f"{dflt} it starts with."
                )
        if lo >= MIN_MEDIUM:
            sev = _worst(sev, Severity.high if lo >= MIN_HIGH else Severity.medium)
            ev["min_bytes"] = lo
            parts.append(
                f"{name} min = {lo} bytes ({_size(lo)}, {v.where()}; the default is 4096): the kernel "
                f"keeps granting every TCP socket's {held} up to {_size(lo)} even when TCP as a whole is "
                "above the tcp_mem pressure threshold, so memory pressure cannot shrink any socket below "
                f"that; 1000 busy connections pin {_size(1000 * lo)}."
            )
            if hard_pages is not None:
                n = hard_pages * PAGE // lo
                ev["sockets_to_fill_tcp_mem_max"] = n
                parts.append(
                    f"Only the tcp_mem hard limit ({hard_pages} pages, {_size(hard_pages * PAGE)}) stops "
                    f"it: {n} connections at their minimum reach it."
                )
            if dflt >= BIG_DEFAULT:
                parts.append(f"Every new socket also starts with a {_size(dflt)} {what} buffer (default field).")
        if sev is None:
            return None
        new_def = dflt if dflt <= BIG_DEFAULT else KERNEL_DEFAULT[key]
        new = sorted([min(lo, 4096) if lo >= MIN_MEDIUM else lo, new_def, hi])
        return self.finding(
            f,
            severity=sev,
            keys=[key],
            evidence=ev,
            fix={key: " ".join(str(x) for x in new)},
            explanation=" ".join(parts),
        )
