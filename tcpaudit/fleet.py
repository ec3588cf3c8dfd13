"""Fleet sweeps: inventories, the parallel SSH sweep, and the cross-host view (rules by host, drift).

Library layer under `tcpaudit fleet` (tcpaudit/cli/fleet.py). Every inventory host ends up in the report exactly
once, with status ok (audited) or the reason it could not be audited.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import AuditOptions, audit_snapshot, build_report, failed_target
from .collect.ssh import Destination, DestinationError, SSHCollector, _bad_chars, parse_destination, validate_host
from .model import Report, Severity, Target, TargetStatus
from .sanitize import clean_text

MAX_INVENTORY_BYTES = 64 << 20
MAX_HOSTS = 100_000
MAX_DRIFT_ENTRIES = 1000
DEFAULT_GROUP = "all"


class InventoryError(ValueError):
    """An inventory that cannot be used; the message names the file and line."""


# ---- inventories ----------------------------------------------------------------------------------------
def _read_source(spec: str) -> tuple[str, str]:
    if spec == "-":
        data = sys.stdin.buffer.read(MAX_INVENTORY_BYTES + 1)
        name = "<stdin>"
    else:
        try:
            with open(spec, "rb") as f:
                data = f.read(MAX_INVENTORY_BYTES + 1)
        except OSError as exc:
            raise InventoryError(f"{spec}: cannot read: {exc.strerror or exc}") from None
        name = spec
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"{name}: larger than {MAX_INVENTORY_BYTES >> 20} MiB")
    return data.decode("utf-8", "replace"), name


def load_inventory(spec: str) -> list[Destination]:
    """A plain host list (one per line, `#` comments, optional `[group]` headers and ansible_host=/
    ansible_user=/ansible_port= on a line) or `ansible-inventory --list` JSON. `-` reads stdin."""
    text, name = _read_source(spec)
    if text.lstrip().startswith("{"):
        return parse_ansible_json(text, name)
    return parse_host_list(text, name)


_GROUP_RE = re.compile(r"\[([A-Za-z0-9_.-]+)(?::(vars|children))?\]")


def _destination(label: str, host: str | None, user: str | None, port: Any, group: str, where: str) -> Destination:
    try:
        if host is None:
            d = parse_destination(label, user=user, port=int(port) if port is not None else None, group=group)
            return d
        # an inventory name with its own connection address (ansible_host): the name is only a label
        if not label or label.startswith("-") or _bad_chars(label) or len(label) > 253:
            raise DestinationError(f"inventory name {clean_text(label, 80)!r} is not usable")
        try:
            validate_host(host)
        except DestinationError as exc:
            raise DestinationError(f"ansible_host: {exc}") from None
        d = parse_destination(host, user=user, port=int(port) if port is not None else None, group=group)
        return Destination(name=label.lower(), host=d.host, user=d.user, port=d.port, group=group)
    except (ValueError, TypeError) as exc:
        msg = str(exc) if isinstance(exc, DestinationError) else f"bad port {clean_text(str(port), 20)!r}"
        raise InventoryError(f"{where}: {msg}") from None


def parse_host_list(text: str, name: str = "<hosts>") -> list[Destination]:
    out: list[Destination] = []
    group = DEFAULT_GROUP
    skip_section = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        g = _GROUP_RE.fullmatch(line)
        if g:
            skip_section = g.group(2) is not None
            group = g.group(1) if g.group(1) not in ("all", "ungrouped") else DEFAULT_GROUP
            continue
        if skip_section:
            continue
        tokens = line.split()
        hostvars: dict[str, str] = {}
        for tok in tokens[1:]:
            k, sep, v = tok.partition("=")
            if not sep:
                raise InventoryError(f"{name}:{n}: one host per line; unexpected {clean_text(tok, 60)!r}")
            hostvars[k] = v
        out.append(
            _destination(
                tokens[0],
                hostvars.get("ansible_host"),
                hostvars.get("ansible_user"),
                hostvars.get("ansible_port"),
                group,
                f"{name}:{n}",
            )
        )
        if len(out) > MAX_HOSTS:
            raise InventoryError(f"{name}: more than {MAX_HOSTS} hosts")
    return out


def parse_ansible_json(text: str, name: str = "<inventory>") -> list[Destination]:
    """`ansible-inventory --list` output: groups with `hosts`, and `_meta.hostvars`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # integers beyond int_max_str_digits, absurd nesting
        raise InventoryError(f"{name}: not a usable JSON inventory ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{name}: expected a JSON object (ansible-inventory --list)")
    meta = data.get("_meta", {})
    hostvars = meta.get("hostvars", {}) if isinstance(meta, dict) else {}
    if not isinstance(hostvars, dict):
        raise InventoryError(f"{name}: _meta.hostvars is not an object")
    order: list[str] = []
    groups: dict[str, str] = {}
    for gname, body in data.items():
        if gname == "_meta" or not isinstance(body, dict):
            continue
        hosts = body.get("hosts", [])
        if not isinstance(hosts, list):
            raise InventoryError(f"{name}: group {clean_text(gname, 60)!r}: hosts is not a list")
        for h in hosts:
            if not isinstance(h, str):
                raise InventoryError(
                    f"{name}: group {clean_text(gname, 60)!r}: host {clean_text(h, 60)!r} is not a string"
                )
            if h not in groups:
                order.append(h)
                groups[h] = DEFAULT_GROUP
            if gname not in ("all", "ungrouped") and groups[h] == DEFAULT_GROUP:
                groups[h] = gname
    for h in hostvars:
        if h not in groups:
            order.append(h)
            groups[h] = DEFAULT_GROUP
    if len(order) > MAX_HOSTS:
        raise InventoryError(f"{name}: more than {MAX_HOSTS} hosts")
    out = []
    for h in order:
        hv = hostvars.get(h) or {}
        if not isinstance(hv, dict):
            hv = {}
        host = hv.get("ansible_host")
        user = hv.get("ansible_user")
        port = hv.get("ansible_port")
        for k, v in (("ansible_host", host), ("ansible_user", user)):
            if v is not None and not isinstance(v, str):
                raise InventoryError(f"{name}: host {clean_text(h, 60)!r}: {k} is not a string")
        out.append(_destination(h, host, user, port, groups[h], f"{name}: host {clean_text(h, 60)!r}"))
    return out


def dedupe(dests: Iterable[Destination], dropped: list[str] | None = None) -> list[Destination]:
    """Each host once, by normalised name (first occurrence wins), in inventory order. A later entry for
    the same host with another user is dropped too; `dropped` collects one line for each such entry so the
    caller can say so."""
    seen: dict[str, Destination] = {}
    out = []
    for d in dests:
        key = d.name.lower().rstrip(".")
        first = seen.get(key)
        if first is not None:
            if dropped is not None and first.user != d.user:
                dropped.append(
                    f"{d.name} is listed more than once with different users; audited once, as "
                    f"{first.user + '@' if first.user else ''}{first.name}"
                )
            continue
        seen[key] = d
        out.append(d)
    return out


# ---- the sweep ------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    targets: list[Target]
    groups: dict[str, str]  # target name -> group
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)  # audited hosts only
    interrupted: bool = False
    elapsed_s: float = 0.0
    # target name -> {"start_s", "connect_s", "collect_s", "audit_s"}: when the host's work began (seconds after
    # the sweep started) and how long each phase took; hosts never started (interrupted) have no entry.
    timeline: dict[str, dict[str, float]] = field(default_factory=dict)
    netns: dict[str, dict[str, Any]] | None = None  # --all-netns: host name -> its enumeration summary


def audit_host_netns(
    res: Any, opts: AuditOptions, name: str, group: str | None = None, prefix: str = ""
) -> tuple[list[Target], dict[str, Any]]:
    """--all-netns over SSH: one collected host (collect.ssh.HostResult with .netns) -> its targets, the host
    first, then each namespace exactly once (ok, or skipped with the reason), and the enumeration summary.
    Namespace targets are named as the local --all-netns names them, after `prefix` (`HOST/` in a fleet)."""
    rn = res.netns
    if rn.enum is None:  # not Linux, no /proc/PID/ns: the host alone, and says why
        target = audit_snapshot(res.snapshot, opts, name=name, group=group, status=TargetStatus.partial)
        target.error = clean_text(
            f"network namespaces could not be enumerated: {rn.unavailable}; only the namespace of the SSH "
            "session was audited",
            500,
        )
        return [target], rn.summary()
    targets: list[Target] = []
    for cap in rn.captures(name, prefix):
        info = cap.entry.info
        kind = "host" if info is not None and info.is_host else "netns"
        if cap.snapshot is None:
            targets.append(failed_target(cap.name, TargetStatus.skipped, cap.error or "not read", kind, info))
            continue
        try:
            targets.append(audit_snapshot(cap.snapshot, opts, name=cap.name, kind=kind, group=group))
        except Exception as exc:  # noqa: BLE001 - one namespace's audit failure is that namespace's status
            why = f"audit failed: {type(exc).__name__}: {exc}"
            targets.append(failed_target(cap.name, TargetStatus.error, why, kind, info))
    return targets, rn.summary()


def _warm_up() -> None:
    """Load the rule catalogue and the kernel knowledge base once, before any host is audited."""
    from .audit import kernel_db
    from .rules.engine import catalogue

    catalogue()
    kernel_db()


def sweep(
    dests: list[Destination],
    collector: SSHCollector,
    opts: AuditOptions,
    jobs: int | None = None,
    sample_s: float = 0.0,
    on_done: Callable[[Target], None] | None = None,
    save_dir: Path | None = None,
    on_start: Callable[[Destination], None] | None = None,
    all_netns: bool = False,
) -> SweepResult:
    """Collect and audit every host, `jobs` at a time. Ctrl-C stops cleanly: the hosts done are kept and the
    rest are listed as `interrupted`. `on_start` is called in the worker thread as a host's collection begins,
    `on_done` in the calling thread with each host's Target. all_netns: every network namespace of each host
    too (one SSH session per host), listed after its host as `HOST/netns:NAME` targets."""
    t0 = time.monotonic()
    n = len(dests)
    jobs = max(1, min(jobs or min(32, n), max(1, n)))
    results: list[Target | None] = [None] * n
    namespaces: dict[int, list[Target]] = {}  # --all-netns: host index -> its namespace targets
    netns_summary: dict[str, dict[str, Any]] = {}
    sysctls: dict[str, dict[str, str]] = {}
    timeline: dict[str, dict[str, float]] = {}
    shared_strings: dict[str, str] = {}
    lock = threading.Lock()

    warm = threading.Event()

    def work(i: int) -> Target:
        d = dests[i]
        if on_start is not None:
            on_start(d)
        start = time.monotonic()
        res = collector.collect(d, sample_s=sample_s, all_netns=all_netns)
        times = {"start_s": start - t0, "connect_s": res.connect_s, "collect_s": res.collect_s, "audit_s": 0.0}
        try:
            if res.status is TargetStatus.ok and res.netns is not None:
                warm.wait()
                t_audit = time.monotonic()
                try:
                    got, summary = audit_host_netns(res, opts, d.name, d.group or DEFAULT_GROUP, f"{d.name}/")
                except Exception as exc:  # noqa: BLE001 - one host's audit failure is that host's status
                    return failed_target(d.name, TargetStatus.error, f"audit failed: {type(exc).__name__}: {exc}")
                finally:
                    times["audit_s"] = time.monotonic() - t_audit
                host_target = got[0]
                if host_target.name != d.name:  # the host namespace itself could not be read
                    host_target = failed_target(d.name, TargetStatus.error, "the host's namespace was not read")
                    got.insert(0, host_target)
                with lock:
                    namespaces[i] = got[1:]
                    netns_summary[d.name] = summary
                    if host_target.status in (TargetStatus.ok, TargetStatus.partial) and res.snapshot is not None:
                        sysctls[d.name] = _drift_values(res.snapshot.sysctls, shared_strings)
                return host_target
            if res.status is TargetStatus.ok and res.snapshot is not None:
                warm.wait()
                t_audit = time.monotonic()
                try:
                    target = audit_snapshot(res.snapshot, opts, name=d.name, group=d.group or DEFAULT_GROUP)
                except Exception as exc:  # noqa: BLE001 - one host's audit failure is that host's status
                    return failed_target(d.name, TargetStatus.error, f"audit failed: {type(exc).__name__}: {exc}")
                finally:
                    times["audit_s"] = time.monotonic() - t_audit
                with lock:
                    sysctls[target.name] = _drift_values(res.snapshot.sysctls, shared_strings)
                if save_dir is not None:
                    _save(res.snapshot, save_dir, d.name)
                return target
            return failed_target(d.name, res.status, res.error or res.status.value)
        finally:
            with lock:
                timeline[d.name] = {k: round(v, 4) for k, v in times.items()}

    interrupted = False
    pool = cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="tcpaudit-ssh")
    futures = {pool.submit(work, i): i for i in range(n)}
    pending = set(futures)
    try:
        # The catalogue and the knowledge base load here while the first connections are in flight (key
        # exchange and the remote collector take far longer); audits wait for them.
        try:
            _warm_up()
        except Exception:  # the catalogue failed to load: no host can be audited, stop connecting
            collector.interrupt()
            raise
        finally:
            warm.set()
        while pending:
            done, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            for f in done:
                i = futures[f]
                results[i] = _result_of(f, dests[i])
                if on_done is not None:
                    on_done(results[i])  # type: ignore[arg-type]
    except KeyboardInterrupt:
        interrupted = True
        collector.interrupt()
        for f in pending:
            f.cancel()
        # running collections end within moments once their connections are closed
        done, pending = cf.wait(pending, timeout=3.0)
        for f in done:
            if not f.cancelled():
                results[futures[f]] = _result_of(f, dests[futures[f]])
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    targets = []
    for i, r in enumerate(results):
        targets.append(
            r
            if r is not None
            else failed_target(dests[i].name, TargetStatus.interrupted, "interrupted before this host was done")
        )
        targets += namespaces.get(i, [])
    return SweepResult(
        targets=targets,
        groups={d.name: d.group or DEFAULT_GROUP for d in dests},
        sysctls=sysctls,
        interrupted=interrupted,
        elapsed_s=time.monotonic() - t0,
        timeline={d.name: timeline[d.name] for d in dests if d.name in timeline},
        netns=netns_summary if all_netns else None,
    )


def _drift_values(values: dict[str, str], shared: dict[str, str]) -> dict[str, str]:
    """The sysctls drift compares (not those that differ by nature), with keys and values shared between the
    hosts of one sweep through `shared`: a fleet's hosts mostly carry the same keys and values, so each host
    costs little more than its dict."""
    intern = shared.setdefault
    return {intern(k, k): intern(v, v) for k, v in values.items() if not _NO_DRIFT.match(k)}


def _result_of(f: cf.Future, d: Destination) -> Target:
    try:
        return f.result()
    except cf.CancelledError:
        return failed_target(d.name, TargetStatus.interrupted, "interrupted before this host was done")
    except Exception as exc:  # noqa: BLE001
        return failed_target(d.name, TargetStatus.error, f"{type(exc).__name__}: {exc}")


def _save(snapshot: Any, directory: Path, name: str) -> None:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200] or "host"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{safe}.json").write_text(snapshot.model_dump_json(indent=1) + "\n", encoding="utf-8")
    except OSError:
        pass


# ---- the cross-host view --------------------------------------------------------------------------------
# Values that differ between hosts by nature: counters, secrets, keys, per-interface settings.
_NO_DRIFT = re.compile(
    r"^(net\.netfilter\.nf_conntrack_count$|net\.ipv4\.tcp_fastopen_key$|net\.core\.netdev_rss_key$"
    r"|.*\.stable_secret$|net\.ipv[46]\.(conf|neigh)\.(?!all\.|default\.)"
    r"|net\.ipv4\.route\.|net\.ipv6\.route\.|net\.core\.bpf_jit)"
)


def drift(
    sysctls: dict[str, dict[str, str]], groups: dict[str, str], limit: int = MAX_DRIFT_ENTRIES
) -> list[dict[str, Any]]:
    """Sysctls where some hosts differ from the clear majority (> half) of their group."""
    by_group: dict[str, list[str]] = {}
    for host in sysctls:
        by_group.setdefault(groups.get(host, DEFAULT_GROUP), []).append(host)
    out: list[dict[str, Any]] = []
    for group in sorted(by_group):
        hosts = by_group[group]
        if len(hosts) < 3:
            continue
        maps = [sysctls[h] for h in hosts]
        keys = sorted(k for k in set().union(*maps) if not _NO_DRIFT.match(k))
        for key in keys:
            column = [m.get(key) for m in maps]
            if len(set(column)) < 2:  # the same value (or absent) everywhere: the common case, decided at once
                continue
            values = {h: v for h, v in zip(hosts, column, strict=True) if v is not None}
            counts = Counter(values.values())
            if len(counts) < 2:
                continue
            value, count = counts.most_common(1)[0]
            if count * 2 <= len(values):
                continue
            odd = {h: v for h, v in values.items() if v != value}
            out.append(
                {
                    "key": key,
                    "group": group,
                    "majority": value,
                    "majority_hosts": count,
                    "hosts": dict(sorted(odd.items())),
                }
            )
            if len(out) >= limit:
                return out
    return out


def fleet_view(targets: list[Target], sysctls: dict[str, dict[str, str]], groups: dict[str, str]) -> dict[str, Any]:
    targets = [t for t in targets if t.kind != "netns"]  # --all-netns: the namespaces are in extra["netns"]
    audited = [t for t in targets if t.status is TargetStatus.ok]
    by_rule: dict[str, dict[str, Any]] = {}
    for t in audited:
        worst: dict[str, Severity] = {}
        for f in t.findings:
            if f.suppressed is not None:
                continue
            if f.rule not in worst or f.severity.rank > worst[f.rule].rank:
                worst[f.rule] = f.severity
        for rule, sev in worst.items():
            e = by_rule.setdefault(rule, {"hosts": 0, "of": len(audited), "severity": sev.value})
            e["hosts"] += 1
            if sev.rank > Severity(e["severity"]).rank:
                e["severity"] = sev.value
    statuses = Counter(t.status.value for t in targets)
    return {
        "hosts": len(targets),
        "audited": len(audited),
        "statuses": dict(sorted(statuses.items())),
        "by_rule": dict(
            sorted(by_rule.items(), key=lambda kv: (-Severity(kv[1]["severity"]).rank, -kv[1]["hosts"], kv[0]))
        ),
        "drift": drift(sysctls, groups),
        "groups": {t.name: groups.get(t.name, DEFAULT_GROUP) for t in targets},
    }


def fleet_report(result: SweepResult, fail_on: Severity | str, policy: Any = None) -> Report:
    report = build_report(result.targets, fail_on, interrupted=result.interrupted)
    report.extra["fleet"] = fleet_view(result.targets, result.sysctls, result.groups)
    report.extra["fleet"]["elapsed_s"] = round(result.elapsed_s, 3)
    report.extra["fleet"]["timeline"] = result.timeline
    if result.netns is not None:
        report.extra.setdefault("netns", {})["hosts"] = result.netns
    if policy is not None:
        from .policy import policy_summary

        hosts = [t for t in result.targets if t.kind != "netns"]
        report.extra["fleet"]["policy"] = policy_summary(hosts, result.groups)
    return report
