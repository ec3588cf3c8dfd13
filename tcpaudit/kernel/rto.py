"""Retransmission-timer arithmetic, per kernel: when a handshake or an established connection gives up.

Facts (kernel_db/sysctls.toml cites each):

* SYN (active open): initial RTO TCP_TIMEOUT_INIT = 1 s, doubled after every retransmission up to TCP_RTO_MAX
  (120 s). From 6.5 (ccce324dabfe, ``net.ipv4.tcp_syn_linear_timeouts``, default 4) the first
  ``tcp_syn_linear_timeouts`` timeouts keep the 1 s RTO (tcp_retransmit_timer() doubles only once the backoff count
  exceeds it) and tcp_write_timeout() allows ``tcp_syn_retries + tcp_syn_linear_timeouts`` retransmissions, but
  still gives up once tcp_model_timeout(tcp_syn_retries, 1 s) has passed since the first SYN.
  Default 6 + 4: retransmissions at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s and ETIMEDOUT at 131 s (127 s before 6.5);
  tcp_syn_retries=1: retransmissions at 1 and 2 s, ETIMEDOUT at 3 s (one retransmission before 6.5).
  Measured on 6.18 in a namespace (tests/test_kernel_rto.py).
* SYN-ACK (passive open): ``TCP_TIMEOUT_INIT << num_timeout``, no linear phase (default 5: 63 s).
* Established data (tcp_retries1/2, tcp_orphan_retries): retransmits_timed_out() compares elapsed time with
  tcp_model_timeout(boundary, TCP_RTO_MIN = 200 ms): ``((2 << b) - 1) * 0.2`` while ``b <= 9``
  (ilog2(TCP_RTO_MAX / TCP_RTO_MIN)), then 120 s per further retry. Default tcp_retries2=15: 924.6 s.
"""

from __future__ import annotations

from dataclasses import dataclass

INIT_RTO_S = 1.0
RTO_MAX_S = 120.0
RTO_MIN_S = 0.2
LINEAR_SINCE = (6, 5)
LINEAR_DEFAULT = 4
_LINEAR_BACKOFF_THRESH = 9  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN) = ilog2(600)


@dataclass(frozen=True)
class Timeline:
    """A retransmission schedule: when each retransmission goes out and when the attempt is abandoned."""

    retransmits_at: tuple[float, ...]
    gives_up_at: float

    @property
    def packets(self) -> int:
        """Packets that must all be lost for the attempt to fail (the first one plus every retransmission)."""
        return len(self.retransmits_at) + 1


def syn_timeline(syn_retries: int, linear: int = 0) -> Timeline:
    """The SYN schedule of connect() with ``tcp_syn_retries`` and ``tcp_syn_linear_timeouts`` (0 before 6.5).

    tcp_write_timeout() (6.5+ copy) gives up when the retransmission count reaches ``syn_retries + linear`` *or*
    when retransmits_timed_out() finds the time since the first SYN at least tcp_model_timeout(syn_retries, 1 s)
    -- so the linear phase adds retransmissions only within the classic time budget (tcp_syn_retries=1: 2
    retransmissions, 3 s; the default 6: 10 retransmissions, 131 s). With ``linear`` 0 both limits coincide."""
    retries, linear = max(syn_retries, 0), max(linear, 0)
    budget = model_timeout(retries, INIT_RTO_S, syn=True)
    rto, t = INIT_RTO_S, 0.0
    at: list[float] = []
    while True:
        t += rto
        if len(at) >= retries + linear or (at and t >= budget):
            return Timeline(tuple(at), t)
        at.append(t)
        if len(at) > linear:
            rto = min(rto * 2, RTO_MAX_S)


def synack_timeline(synack_retries: int) -> Timeline:
    """The SYN-ACK schedule of a listener (exponential from 1 s, no linear phase)."""
    return syn_timeline(synack_retries, 0)


def model_timeout(boundary: int, rto_base: float = RTO_MIN_S, syn: bool = False) -> float:
    """tcp_model_timeout(): seconds of exponential backoff from ``rto_base`` after ``boundary`` retransmissions
    (linear_backoff_thresh = ilog2(TCP_RTO_MAX / rto_base): 9 for 200 ms, 6 for the 1 s SYN base)."""
    thresh = _LINEAR_BACKOFF_THRESH if not syn else 6  # ilog2(120 / 1)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * RTO_MAX_S


def linear_timeouts_for(version: tuple[int, ...] | None, configured: int | None = None) -> int | None:
    """tcp_syn_linear_timeouts in effect: the configured value on 6.5+, 0 before 6.5, None when the kernel is unknown
    and nothing was configured."""
    if version is not None and tuple(version[:2]) < LINEAR_SINCE:
        return 0
    if configured is not None:
        return configured
    if version is None:
        return None
    return LINEAR_DEFAULT


def fmt_s(seconds: float) -> str:
    """'7 s', '924.6 s', '15.4 min'."""
    if seconds >= 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:g} s" if seconds == int(seconds) else f"{seconds:.1f} s"


def schedule(t: Timeline) -> str:
    """The retransmission times of a timeline, '0.2 s, 0.6 s, 1.4 s'."""
    return ", ".join(fmt_s(x) for x in t.retransmits_at)


def data_timeline(retries: int, rto_s: float = RTO_MIN_S) -> Timeline:
    """When an established connection with unacknowledged data gives up, for tcp_retries2 (or the orphan limit).

    tcp_write_timeout() (net/ipv4/tcp_timer.c, stored mainline copy 01a523b07161) aborts once
    retransmits_timed_out() finds the time since retrans_stamp at least tcp_model_timeout(retries, TCP_RTO_MIN): a
    time budget, not a count. retrans_stamp is taken from the segment's timestamp right after its first
    retransmission (tcp_retransmit_skb()), so the budget runs from the first retransmission. The timer fires at
    rto, 3 rto, 7 rto ... (doubling up to TCP_RTO_MAX); the first firing at least the budget after the first
    retransmission aborts with ETIMEDOUT instead of retransmitting. Measured on 6.18 on a 200 ms-RTO path:
    tcp_retries2=2 gives 3 retransmissions, 3 gives 4 (tests/test_kernel_retries2.py)."""
    budget = model_timeout(max(retries, 0))
    rto, t = max(rto_s, RTO_MIN_S), 0.0
    at: list[float] = []
    while True:
        t += rto
        if at and t - at[0] >= budget - 1e-9:
            return Timeline(tuple(round(x, 3) for x in at), round(t, 3))
        at.append(t)
        rto = min(rto * 2, RTO_MAX_S)
