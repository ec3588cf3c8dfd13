"""TCP009: tcp_syn_retries / tcp_synack_retries so low that a short loss burst fails the handshake."""

from tcpaudit.kernel import rto
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

SYN = "net.ipv4.tcp_syn_retries"
SYNACK = "net.ipv4.tcp_synack_retries"
LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
LOW = 2  # <= 2 retries: before 6.5 the whole SYN budget is under ~7 s
MEDIUM_WITHIN_S = 3.0  # a handshake abandoned within 3 s (two lost packets) is medium; a longer budget is low
# include/net/tcp.h (stored mainline copy 003e07a1e48e): TCP_TIMEOUT_INIT = 1*HZ (initial RTO), doubled on
# every retransmission; TCP_SYN_RETRIES 6, TCP_SYNACK_RETRIES 5 (ip-sysctl.rst: 6 -> 127 s, 5 -> 63 s).
# From 6.5 the first tcp_syn_linear_timeouts (default 4) SYN timeouts stay at 1 s and add to the retries
# (tcpaudit/kernel/rto.py, kernel_db/sysctls.toml net.ipv4.tcp_syn_linear_timeouts).
_DOCUMENTED = {SYN: 6, SYNACK: 5}


def give_up_after(retries: int, linear: int = 0) -> float:
    """Seconds until connect() abandons the handshake with `retries` SYN retries and `linear` linear timeouts."""
    return rto.syn_timeline(retries, linear).gives_up_at


def _default(f: Facts, name: str) -> int:
    if f.kdb is not None and f.release is not None:
        fact = f.kdb.sysctl(name)
        raw = fact.default_in(f.release) if fact is not None else None
        if raw is not None and str(raw).strip().isdigit():
            return int(raw)
    return _DOCUMENTED[name]


def _judged(f: Facts, v: Value) -> int | None:
    if f.kind == "config" and v.origin != "config":
        return None
    return v.int


def _linear(f: Facts) -> int | None:
    """tcp_syn_linear_timeouts in effect on the target (0 before 6.5; None: kernel unknown)."""
    v = f.value(LINEAR)
    if v.origin == "absent":
        return 0  # a host without the key runs the pre-6.5 schedule whatever its version string says
    version = tuple(f.release.version) if f.release is not None else None
    return rto.linear_timeouts_for(version, v.int)


class SynRetriesLow(Rule):
    meta = RuleMeta(
        id="TCP009",
        title="tcp_syn_retries / tcp_synack_retries very low: a burst of a few lost handshake packets fails the "
        "connection",
        severity=Severity.medium,
        keys=[SYN, SYNACK],
        summary=(
            "tcp_syn_retries is how often connect() retransmits its SYN, tcp_synack_retries how often a server "
            "retransmits its SYN-ACK. Each retransmission waits twice as long as the previous one, starting at "
            "1 s, so before 6.5 1 retry means connect() gives up after 3 s (2 lost packets in a row) and 2 retries "
            "after 7 s (3 in a row). From 6.5 tcp_syn_linear_timeouts (default 4) adds four 1 s retransmissions "
            "first (within the same time budget), so tcp_syn_retries=1 sends 2 retransmissions and still gives up "
            "after 3 s, tcp_syn_retries=2 sends 4 and gives up after 9 s. Set that low, "
            "a short loss burst, a brief SNAT-port or accept-queue shortage, or a failover turn into connection "
            "failures that look random."
        ),
        mechanism=[
            "connect() sends a SYN and arms a 1 s timer (TCP_TIMEOUT_INIT); each unanswered timeout retransmits "
            "and doubles the timer, and after tcp_syn_retries retransmissions the attempt fails with ETIMEDOUT "
            "(ip-sysctl.rst: the default of 6 gives up after 127 s).",
            "Before 6.5, with tcp_syn_retries=1 the timeline is SYN at 0 s, retry at 1 s, failure at 3 s; with 2: "
            "0, 1, 3 s, failure at 7 s. Losing the SYN and its single retransmission (a full SYN/accept queue on "
            "the server, a NAT gateway out of ports that drops SYNs, a 3 s failover) is enough.",
            "From 6.5 (ccce324dabfe) the first tcp_syn_linear_timeouts (default 4) timeouts keep the 1 s RTO and "
            "add to the retry count, while the time budget of tcp_syn_retries (tcp_model_timeout with a 1 s base) "
            "still ends the attempt: tcp_syn_retries=1 retransmits at 1 and 2 s and fails at 3 s; the default 6 "
            "retransmits ten times and fails at 131 s instead of 127 s. SYN-ACKs have no linear phase.",
            "On the server, tcp_synack_retries bounds how long a half-open request waits for the client's ACK "
            "(default 5: 63 s). If the client's ACK is lost and the request expires first, the client, which "
            "already considers itself connected, has its first data answered with a RST, or waits forever for a "
            "server-speaks-first greeting (SMTP, MySQL, SSH).",
            "The settings are usually made to 'fail fast'; per-socket connect timeouts in the application do that "
            "without making the kernel give up on packet loss it would otherwise recover from.",
        ],
        when_it_matters=(
            "Any host on lossy or congested paths, behind SNAT gateways whose port allocation can stall, or talking "
            "to servers that drop SYNs during bursts. Seen in tuning files (clay-wangzhi, HXHGTS: both set to 1) "
            "and Helm init containers that run 'sysctl -w net.ipv4.tcp_syn_retries=1'."
        ),
        remediation=(
            "Restore the defaults (tcp_syn_retries=6, tcp_synack_retries=5) or at least 3 to 4, and set connect "
            "timeouts in the application (or TCP_SYNCNT per socket) where a fast failure is wanted."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_syn_retries (6 -> 127 s), tcp_synack_retries (5 -> 63 s)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="include/net/tcp.h: TCP_TIMEOUT_INIT (1 s), TCP_SYN_RETRIES, TCP_SYNACK_RETRIES",
                url="https://github.com/torvalds/linux/blob/master/include/net/tcp.h",
            ),
            Reference(
                title="RFC 6298: Computing TCP's Retransmission Timer (1 s initial RTO)",
                url="https://www.rfc-editor.org/rfc/rfc6298",
            ),
        ],
    )

    def check(self, f: Facts):
        syn_v, synack_v = f.value(SYN), f.value(SYNACK)
        syn, synack = _judged(f, syn_v), _judged(f, synack_v)
        if f.kind == "host" and syn is None and synack is None:
            return self.unknown("tcp_syn_retries and tcp_synack_retries could not be read")
        syn_low = syn is not None and syn <= LOW
        synack_low = synack is not None and synack <= LOW
        if not (syn_low or synack_low):
            return None
        ev: dict = {
            "tcp_syn_retries": syn_v.raw,
            "tcp_syn_retries_origin": syn_v.origin,
            "tcp_synack_retries": synack_v.raw,
            "tcp_synack_retries_origin": synack_v.origin,
        }
        parts: list[str] = []
        fix: dict[str, str] = {}
        keys: list[str] = []
        ctx: list[str] = []
        sev = Severity.low
        if syn_low:
            assert syn is not None
            linear = _linear(f)
            eff = 0 if linear is None else linear
            t = rto.syn_timeline(syn, eff)
            ev["connect_gives_up_after_s"] = t.gives_up_at
            ev["connect_gives_up_after_s_default"] = give_up_after(_default(f, SYN), eff)
            ev["syn_retransmissions"] = len(t.retransmits_at)
            ev["tcp_syn_linear_timeouts"] = "unknown (kernel unknown)" if linear is None else linear
            keys.append(SYN)
            fix[SYN] = str(_default(f, SYN))
            parts.append(
                f"tcp_syn_retries={syn} ({syn_v.where()}): connect() sends the SYN, retransmits it "
                f"{len(t.retransmits_at)} time(s) (at {rto.schedule(t)}) and fails with ETIMEDOUT after "
                f"{rto.fmt_s(t.gives_up_at)} (default: {rto.fmt_s(ev['connect_gives_up_after_s_default'])}). "
                f"Losing {t.packets} packets in a row, or a server or NAT gateway that drops SYNs for "
                f"{rto.fmt_s(t.gives_up_at)}, fails the connection."
            )
            if linear is None:
                t65 = rto.syn_timeline(syn, rto.LINEAR_DEFAULT)
                parts.append(
                    f"(Timeline of kernels before 6.5; from 6.5, with the default tcp_syn_linear_timeouts="
                    f"{rto.LINEAR_DEFAULT}, it is {len(t65.retransmits_at)} retransmissions and "
                    f"{rto.fmt_s(t65.gives_up_at)}.)"
                )
            elif linear:
                ctx.append(f"tcp_syn_linear_timeouts={linear} on this kernel (6.5+) adds {linear} 1 s retransmissions")
            if t.gives_up_at <= MEDIUM_WITHIN_S:
                sev = Severity.medium
        if synack_low:
            assert synack is not None
            ts = rto.synack_timeline(synack)
            ev["half_open_request_expires_after_s"] = ts.gives_up_at
            keys.append(SYNACK)
            fix[SYNACK] = str(_default(f, SYNACK))
            parts.append(
                f"tcp_synack_retries={synack} ({synack_v.where()}): a half-open request is dropped after "
                f"{rto.fmt_s(ts.gives_up_at)} ({ts.packets} SYN-ACKs or final ACKs lost in a row); if the client's "
                "final ACK was lost by then, the client (already 'connected') gets a RST on its first data, or "
                "waits forever for a server-speaks-first greeting."
            )
        ctx.insert(
            0,
            f"'very low' means <= {LOW} retries; medium when connect() gives up within "
            f"{rto.fmt_s(MEDIUM_WITHIN_S)} (two lost packets), low otherwise",
        )
        if not syn_low:
            ctx.append("only the server side is short: clients still retransmit their SYN, so severity low")
        if f.context.nat_idle_timeout is not None or f.context.kubernetes:
            ctx.append(
                "behind NAT/Kubernetes a SYN can be dropped while a SNAT port or conntrack entry is "
                "unavailable, which makes a short retry budget fail more often"
            )
        return self.finding(f, severity=sev, keys=keys, evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts))
