"""Rule cases as data: fixtures/rules/<RULE>.yaml -> (Facts, expectation).

A case is a partial snapshot: any Snapshot field may be given (sysctls, counters, conntrack,
environment, previous, uptime_s, ...); the rest takes defaults. Sugar:
  kernel: "3.10.0-1160.el7.x86_64"          -> snapshot.kernel.release
  sockets: [{state, local, remote, timer, timer_ms, lastsnd_ms, lastrcv_ms, uid, count}]
           local "10.0.0.1:32768+" with count N gives N sockets on consecutive local ports
  kind: config + configured: {key: value}   -> a config target (lint), each key at line n of "case.conf"
  lint: TEXT or {file: NAME, text: TEXT}    -> a config target exactly as `tcpaudit lint` parses that file
  context: {nat_idle_timeout, profiles, clients_behind_nat, auto_detect, thresholds}
  policy: {...}  (the [policy] table of .tcpaudit.toml) and group: NAME -> a policy (POL001) and inventory group
  persisted: {files, settings: {key: {value, file, line, shadowed}}, ...} -> Snapshot.persisted (CFG001)
Expectation: expect: fail | pass | not_applicable | unknown; severity; evidence (subset); explanation_contains;
context_contains (the finding's context: why this severity, docs/severity.md);
reason_contains (not_applicable, unknown).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from tcpaudit.audit import facts_for
from tcpaudit.context import ContextOptions, resolve_context
from tcpaudit.model import Location
from tcpaudit.snapshot import Snapshot, Socket, SocketTable

ROOT = Path(__file__).resolve().parents[1]
CASE_DIR = ROOT / "fixtures" / "rules"
HOST_ROOTS = ["net.ipv4", "net.ipv6", "net.core"]


def _endpoint(text: str) -> tuple[str, int, bool]:
    seq = text.endswith("+")
    host, _, port = text.rstrip("+").rpartition(":")
    return host.strip("[]"), int(port), seq


def sockets_from(spec: list[dict[str, Any]]) -> SocketTable:
    rows: list[Socket] = []
    for s in spec:
        laddr, lport, lseq = _endpoint(s["local"])
        raddr, rport, rseq = _endpoint(s.get("remote", "0.0.0.0:0"))
        for i in range(int(s.get("count", 1))):
            rows.append(
                Socket(
                    6 if ":" in laddr else 4,
                    s.get("state", "ESTAB"),
                    laddr,
                    lport + (i if lseq else 0),
                    raddr,
                    rport + (i if rseq else 0),
                    s.get("recv_q", 0),
                    s.get("send_q", 0),
                    s.get("timer"),
                    s.get("timer_ms"),
                    s.get("retrans", 0 if s.get("timer") else None),
                    s.get("uid", 1000),
                    s.get("inode", 1000 + i),
                    s.get("lastsnd_ms"),
                    s.get("lastrcv_ms"),
                )
            )
    detail = "ss-i" if any("lastsnd_ms" in s or "lastrcv_ms" in s for s in spec) else "none"
    return SocketTable.from_rows(rows, source="ss", detail=detail)


def _lint_case(case: dict[str, Any]):  # type: ignore[no-untyped-def]
    """`lint: TEXT` (a sysctl.conf) or `lint: {file: NAME, text: TEXT}`: the facts `tcpaudit lint` builds."""
    from tcpaudit.audit import AuditOptions
    from tcpaudit.lint import config_facts, parse_text

    spec = case["lint"] if isinstance(case["lint"], dict) else {"file": "case.conf", "text": case["lint"]}
    (unit,) = parse_text(spec["text"], spec["file"])
    opts = AuditOptions(context=ContextOptions(**(case.get("context") or {})), policy=_policy(case))
    return config_facts(unit, opts, case.get("kernel", "6.1.0-18-amd64"))[0]


def build_case(case: dict[str, Any]):  # type: ignore[no-untyped-def]
    if "lint" in case:
        return _lint_case(case)
    data = {
        k: v
        for k, v in case.items()
        if k
        not in {
            "name",
            "seed",
            "kind",
            "kernel",
            "sockets",
            "configured",
            "context",
            "expect",
            "severity",
            "evidence",
            "explanation_contains",
            "context_contains",
            "reason_contains",
            "note",
            "socket_detail",
            "policy",
            "group",
        }
    }
    kind = case.get("kind", "host")
    release = case.get("kernel", "6.1.0-18-amd64")
    data.setdefault("hostname", "case-host")
    data.setdefault("collected_at", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    data.setdefault("source", "file")
    data["kernel"] = {"release": release}
    sysctls = {k: str(v) for k, v in (data.get("sysctls") or {}).items()}
    data["sysctls"] = sysctls
    if kind == "host" and "sysctl_roots" not in data:
        roots = list(HOST_ROOTS)
        if any(k.startswith("net.netfilter.") for k in sysctls):
            roots.append("net.netfilter")
        data["sysctl_roots"] = roots
    snap = Snapshot.model_validate(data)
    if "sockets" in case:
        snap.sockets = sockets_from(case["sockets"])
        if case.get("socket_detail"):
            snap.sockets.detail = case["socket_detail"]
    configured = {}
    if kind == "config":
        for n, (k, v) in enumerate((case.get("configured") or {}).items(), 1):
            configured[k] = (str(v), Location(file="case.conf", line=n))
            snap.sysctls[k] = str(v)
    ctx = resolve_context(ContextOptions(**(case.get("context") or {})), snap)
    return facts_for(snap, ctx, kind=kind, configured=configured, policy=_policy(case), group=case.get("group"))


def _policy(case: dict[str, Any]):  # type: ignore[no-untyped-def]
    if "policy" not in case:
        return None
    from tcpaudit.audit import kernel_db
    from tcpaudit.policy import parse_policy

    return parse_policy(case["policy"], "case.toml", kernel_db())


def load_cases() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted(CASE_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        rule = doc["rule"]
        if path.stem != rule:
            raise ValueError(f"{path.name}: file must be named after its rule ({rule}.yaml)")
        for case in doc["cases"]:
            out.append((rule, case["name"], case))
    return out
