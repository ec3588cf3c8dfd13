"""One self-contained HTML page for a host, fleet, lint or `--all-netns` report.

Everything is inline (styles, the small script, the plots as SVG drawn here, the JSON report) and a
Content-Security-Policy allows nothing but the page's own style and script (by hash): the page makes no
request when opened, from a CI artifact or an e-mail attachment alike.

The page: a summary (targets, statuses, findings by severity), plots (findings by rule, targets by status,
the sweep timeline when the fleet recorded one), the target x rule matrix (sortable, filterable by group,
severity, rule and status, searchable), the targets that could not be audited with their reason, drift per
inventory group, one section per rule with its mechanism from the catalogue, the evidence per target and the
fix, and each target's context and gaps.

Text from hosts, files and users is untrusted: it is neutralised with clean_text (control, bidi and other
invisible characters become visible escapes) and then HTML-escaped by Jinja2's autoescaping; links are made
only from http(s) URLs; the embedded JSON escapes `<`, `>`, `&`, U+2028 and U+2029 so that no text can end
its <script> element. The script only ever writes text (textContent), never markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from ..model import Finding, Outcome, Report, Severity, Target, TargetStatus
from ..sanitize import clean_text
from . import _levels

# Statuses whose target was audited (partial: from part of its inputs, said so on the row).
AUDITED = (TargetStatus.ok, TargetStatus.partial)
MAX_TEXT = 2000
MAX_EVIDENCE_VALUE = 400
MAX_DRIFT_HOSTS_SHOWN = 60
_SEV_LETTER = {"critical": "C", "high": "H", "medium": "M", "low": "L", "info": "I"}
_STATUS_ORDER = [s.value for s in TargetStatus]
_SAFE_URL = re.compile(r"^https?://[^\s\"'<>`]+$", re.I)


def _t(value: object, limit: int | None = MAX_TEXT) -> str:
    """Untrusted text for the page (autoescaping does the HTML part)."""
    return clean_text("" if value is None else value, limit)


def _url(value: str) -> str | None:
    """An href for http(s) URLs only: no javascript:, data: or relative links from report data."""
    text = clean_text(value, 2000)
    return text if _SAFE_URL.match(text) else None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if v == v and abs(v) != float("inf") and v >= 0 else None


# ---- the view model --------------------------------------------------------------------------------------
@dataclass
class Cell:
    cls: str  # sev-high, sup, err, unk, pass, na, none
    label: str
    title: str
    rank: int  # for sorting: 4 critical .. 0 info, -1 suppressed/pass, -2 nothing


@dataclass
class Row:
    id: str
    name: str
    kind: str
    status: str
    audited: bool
    group: str
    kernel: str
    findings: int
    suppressed: int
    worst: str
    worst_rank: int
    reason: str
    sub: str  # second line: the namespace (pod, inode) of a netns row
    parent: str | None
    cells: list[Cell] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    search: str = ""


@dataclass
class EvidenceRow:
    target_id: str
    target: str
    sub: str
    severity: str
    outcome: str
    explanation: str
    evidence: list[tuple[str, str]]
    location: str
    fix: list[tuple[str, str]]
    remediation: str
    context: list[str]
    suppressed: str


@dataclass
class RuleSection:
    id: str
    title: str
    severity: str  # worst active severity seen, else the catalogue's
    default_severity: str
    hosts: int
    of: int
    suppressed: int
    errors: int
    summary: str
    mechanism: list[str]
    when: str
    remediation: str
    references: list[tuple[str, str | None]]  # (title, href or None)
    keys: list[str]
    rows: list[EvidenceRow]
    in_catalogue: bool


@dataclass
class Bar:
    label: str
    value: int
    cls: str
    y: float
    w: float
    note: str = ""


@dataclass
class Lane:
    label: str
    target_id: str
    y: float
    segments: list[tuple[str, float, float, str]]  # (cls, x, w, title)


def _sub(t: Target) -> str:
    ns = t.netns
    if ns is None:
        return ""
    bits = []
    if ns.is_host:
        bits.append("host namespace")
    if ns.pod:
        bits.append(f"pod {ns.pod}")
    elif ns.name and ns.name != t.name:
        bits.append(ns.name)
    bits.append(f"netns {ns.inode}")
    if ns.pids:
        bits.append("pid " + ",".join(str(p) for p in ns.pids[:5]) + ("…" if len(ns.pids) > 5 else ""))
    return _t(" · ".join(bits), 300)


def _parents(targets: list[Target]) -> list[int | None]:
    """For each target, the index of the host whose namespace it is (the report lists a host, then the
    namespaces found on it), or None for a top-level row."""
    out: list[int | None] = []
    head: int | None = None
    for i, t in enumerate(targets):
        if t.kind == "netns" and not (t.netns is not None and t.netns.is_host):
            out.append(head)
        else:
            head = i if t.kind in ("host", "netns") else None
            out.append(None)
    return out


def _active(t: Target) -> list[Finding]:
    return [f for f in t.findings if f.suppressed is None]


def _worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


def _rule_columns(report: Report) -> list[str]:
    """Rules that fired, were suppressed, crashed or could not be judged on some target: worst first."""
    worst: dict[str, int] = {}
    hosts: Counter[str] = Counter()
    for t in report.targets:
        seen = set()
        for f in t.findings:
            r = _t(f.rule, 40)
            rank = f.severity.rank if f.suppressed is None and f.outcome is not Outcome.error else -1
            worst[r] = max(worst.get(r, -2), rank)
            if f.suppressed is None and r not in seen:
                hosts[r] += 1
                seen.add(r)
        for c in t.checks:
            if c.outcome in (Outcome.error, Outcome.unknown):
                worst.setdefault(_t(c.rule, 40), -2)
    return sorted(worst, key=lambda r: (-worst[r], -hosts[r], r))


def _cell(t: Target, rule: str, checks: dict[str, Any]) -> Cell:
    if t.status not in AUDITED:
        return Cell("none", "", f"{rule}: not audited ({t.status.value})", -3)
    fs = [f for f in t.findings if _t(f.rule, 40) == rule]
    errors = [f for f in fs if f.outcome is Outcome.error]
    active = [f for f in fs if f.suppressed is None and f.outcome is not Outcome.error]
    if active:
        sev = _worst(active)
        assert sev is not None
        title = f"{rule} {sev.value}: " + _t(active[0].title, 200)
        if len(active) > 1:
            title += f" ({len(active)} findings)"
        return Cell(f"sev-{sev.value}", _SEV_LETTER[sev.value], title, sev.rank)
    if errors or (rule in checks and checks[rule].outcome is Outcome.error):
        why = _t(errors[0].explanation if errors else checks[rule].reason, 300)
        return Cell("err", "!", f"{rule}: the rule crashed, not checked — {why}", -1)
    if fs:
        s = fs[0].suppressed
        assert s is not None
        return Cell("sup", "s", f"{rule} suppressed ({s.kind}): " + _t(s.reason, 200), -1)
    c = checks.get(rule)
    if c is None:
        return Cell("na", "", f"{rule}: not run", -2)
    if c.outcome is Outcome.unknown:
        return Cell("unk", "?", f"{rule}: unknown — " + _t(c.reason, 300), -1)
    if c.outcome is Outcome.passed:
        return Cell("pass", "", f"{rule}: pass", -2)
    return Cell("na", "", f"{rule}: not applicable" + (" — " + _t(c.reason, 300) if c.reason else ""), -2)


def _rows(report: Report, rules: list[str], groups: dict[str, str]) -> list[Row]:
    parents = _parents(report.targets)
    rows: list[Row] = []
    for i, t in enumerate(report.targets):
        parent = parents[i]
        group = groups.get(t.name) or (groups.get(report.targets[parent].name) if parent is not None else None)
        checks = {_t(c.rule, 40): c for c in t.checks}
        active = _active(t)
        worst = _worst(active)
        audited = t.status in AUDITED
        name = _t(t.name, 253)
        sub = _sub(t)
        row = Row(
            id=f"t{i}",
            name=name,
            kind=t.kind,
            status=t.status.value,
            audited=audited,
            group=_t(group or "all", 80),
            kernel=_t(t.kernel.release or "", 80),
            findings=len(active),
            suppressed=len(t.findings) - len(active),
            worst=worst.value if worst else "",
            worst_rank=worst.rank if worst else -1,
            reason=_t(t.error or "", 500),
            sub=sub,
            parent=f"t{parent}" if parent is not None else None,
        )
        row.cells = [_cell(t, r, checks) for r in rules]
        row.fired = sorted({_t(f.rule, 40) for f in active})
        row.search = f"{name} {sub}".lower()
        rows.append(row)
    return rows


def _evidence_value(v: object) -> str:
    if isinstance(v, str):
        return _t(v, MAX_EVIDENCE_VALUE)
    try:
        text = json.dumps(v, ensure_ascii=False, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = str(v)
    return _t(text, MAX_EVIDENCE_VALUE)


def _evidence_row(i: int, t: Target, f: Finding, sub: str) -> EvidenceRow:
    loc = ""
    if f.location is not None:
        loc = _t(f.location.file, 300) + (f":{f.location.line}" if f.location.line else "")
    sup = ""
    if f.suppressed is not None:
        s = f.suppressed
        sup = f"{s.kind}: {_t(s.reason, 300)}" + (f" (expires {_t(s.expires, 40)})" if s.expires else "")
    return EvidenceRow(
        target_id=f"t{i}",
        target=_t(t.name, 253),
        sub=sub,
        severity=f.severity.value,
        outcome=f.outcome.value,
        explanation=_t(f.explanation),
        evidence=[(_t(k, 80), _evidence_value(v)) for k, v in f.evidence.items()][:40],
        location=loc,
        fix=[(_t(k, 200), _t(v, 200)) for k, v in f.fix.items()],
        remediation=_t(f.remediation),
        context=[_t(c, 300) for c in f.context],
        suppressed=sup,
    )


def _sections(report: Report, rules: list[str], metas: dict[str, Any], audited: int) -> list[RuleSection]:
    out = []
    for rule in rules:
        rows: list[EvidenceRow] = []
        hosts: set[int] = set()
        suppressed = errors = 0
        worst: Severity | None = None
        first: Finding | None = None
        for i, t in enumerate(report.targets):
            for f in t.findings:
                if _t(f.rule, 40) != rule:
                    continue
                first = first or f
                rows.append(_evidence_row(i, t, f, _sub(t)))
                if f.outcome is Outcome.error:
                    errors += 1
                elif f.suppressed is not None:
                    suppressed += 1
                else:
                    hosts.add(i)
                    worst = f.severity if worst is None or f.severity.rank > worst.rank else worst
        if not rows:
            continue  # only unknown/error check outcomes: shown in the matrix and per target
        rows.sort(key=lambda r: (r.suppressed != "", r.outcome != "error", -_levels.rank(r.severity)))
        m = metas.get(rule)
        if m is not None:
            section = RuleSection(
                id=rule,
                title=_t(m.title, 300),
                severity=worst.value if worst else m.severity.value,
                default_severity=m.severity.value,
                hosts=len(hosts),
                of=audited,
                suppressed=suppressed,
                errors=errors,
                summary=_t(m.summary),
                mechanism=[_t(s) for s in m.mechanism],
                when=_t(m.when_it_matters),
                remediation=_t(m.remediation),
                references=[(_t(r.title, 300), _url(r.url)) for r in m.references],
                keys=[_t(k, 200) for k in m.keys],
                rows=rows,
                in_catalogue=True,
            )
        else:  # a rule this catalogue does not know (a report made elsewhere): what the findings say
            assert first is not None
            section = RuleSection(
                id=rule,
                title=_t(first.title, 300),
                severity=worst.value if worst else first.severity.value,
                default_severity="",
                hosts=len(hosts),
                of=audited,
                suppressed=suppressed,
                errors=errors,
                summary="",
                mechanism=[],
                when="",
                remediation=_t(first.remediation),
                references=[(_t(u, 300), _url(u)) for u in first.references],
                keys=[_t(k, 200) for k in first.keys],
                rows=rows,
                in_catalogue=False,
            )
        out.append(section)
    return out


# ---- plots (geometry here, drawing in the template: every label goes through autoescaping) -------------
BAR_H = 22.0
BAR_GAP = 6.0
PLOT_W = 560.0
LABEL_W = 150.0
TIMELINE_W = 1240.0  # the timeline spans the page


def _bars(items: list[tuple[str, int, str, str]]) -> tuple[list[Bar], float, int]:
    top = max((v for _, v, _, _ in items), default=0)
    scale = (PLOT_W - LABEL_W - 60) / top if top else 0.0
    bars = [
        Bar(label=label, value=v, cls=cls, y=i * (BAR_H + BAR_GAP), w=max(2.0, v * scale), note=note)
        for i, (label, v, cls, note) in enumerate(items)
    ]
    return bars, len(items) * (BAR_H + BAR_GAP), top


def _nice_step(total: float, ticks: int = 6) -> float:
    raw = total / ticks if total > 0 else 1.0
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


_PHASES = ("connect_s", "collect_s", "audit_s")


def _timeline(report: Report, fleet: dict[str, Any]) -> dict[str, Any] | None:
    raw = fleet.get("timeline")
    if not isinstance(raw, dict) or not raw:
        return None
    index = {t.name: i for i, t in enumerate(report.targets)}
    entries = []
    for name, e in raw.items():
        if not isinstance(e, dict):
            continue
        start = _num(e.get("start_s")) or 0.0
        phases = [(p, _num(e.get(p))) for p in _PHASES]
        entries.append((index.get(name, len(index)), _t(name, 120), start, phases))
    if not entries:
        return None
    entries.sort(key=lambda x: (x[0], x[2]))
    end = max(s + sum(v or 0.0 for _, v in ph) for _, _, s, ph in entries) or 1.0
    n = len(entries)
    lane_h = max(1.0, min(16.0, 480.0 / n))
    width = TIMELINE_W - LABEL_W - 30
    scale = width / end
    lanes = []
    for k, (i, name, start, phases) in enumerate(entries):
        x = start * scale
        segs = []
        for p, v in phases:
            if v is None:
                continue
            w = max(v * scale, 0.5)
            segs.append((p.removesuffix("_s"), x, w, f"{name}: {p.removesuffix('_s')} {v:.2f} s"))
            x += v * scale
        lanes.append(Lane(label=name, target_id=f"t{i}" if i < len(index) else "", y=k * lane_h, segments=segs))
    step = _nice_step(end)
    ticks = []
    v = 0.0
    while v <= end * 1.0001:
        ticks.append((v * scale, f"{v:g} s"))
        v += step
    stats = []
    for p in _PHASES:
        vals = sorted(v for _, _, _, ph in entries for q, v in ph if q == p and v is not None)
        if vals:
            stats.append(
                {
                    "phase": p.removesuffix("_s"),
                    "n": len(vals),
                    "median": vals[len(vals) // 2],
                    "p95": vals[min(len(vals) - 1, int(len(vals) * 0.95))],
                    "max": vals[-1],
                    "sum": sum(vals),
                }
            )
    return {
        "lanes": lanes,
        "lane_h": lane_h,
        "labels": lane_h >= 9,
        "height": n * lane_h,
        "ticks": ticks,
        "end": end,
        "stats": stats,
        "n": n,
    }


# ---- drift ------------------------------------------------------------------------------------------------
def _drift(fleet: dict[str, Any]) -> list[dict[str, Any]]:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for d in fleet.get("drift") or []:
        if not isinstance(d, dict):
            continue
        hosts = d.get("hosts")
        if not isinstance(hosts, dict):
            hosts = {}
        items = [(_t(h, 120), _t(v, 200)) for h, v in hosts.items()]
        by_group.setdefault(_t(d.get("group", "all"), 80), []).append(
            {
                "key": _t(d.get("key", ""), 200),
                "majority": _t(d.get("majority", ""), 200),
                "majority_hosts": d.get("majority_hosts") if isinstance(d.get("majority_hosts"), int) else "",
                "hosts": items[:MAX_DRIFT_HOSTS_SHOWN],
                "more": max(0, len(items) - MAX_DRIFT_HOSTS_SHOWN),
            }
        )
    return [{"group": g, "entries": e} for g, e in sorted(by_group.items())]


# ---- the JSON inside <script> ----------------------------------------------------------------------------
_SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_SAFE_RE = re.compile("[<>&\u2028\u2029]")


def _finite(obj: object) -> object:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def script_json(data: object) -> str:
    """JSON that can sit inside <script type="application/json">: no `</script>`, `<!--` or `]]>` can
    form, and the line separators JavaScript once refused are escaped. JSON.parse gives back `data`."""
    # ASCII only: no raw bidi or line-separator character sits in the page, even where it is never shown
    try:
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity somewhere in report.extra: JSON.parse would refuse them
        text = json.dumps(_finite(data), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_SAFE_RE.sub(lambda m: _SCRIPT_SAFE[m.group(0)], text)


# ---- assets and template ---------------------------------------------------------------------------------
@cache
def _asset(name: str) -> str:
    text = resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():  # our own file; a mistake here would break the page
        raise ValueError(f"templates/{name} contains {closing}")
    return text


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tcpaudit.reporters", "templates"),
        autoescape=True,  # every {{ }} is HTML-escaped; only our own CSS/JS/JSON are marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt_s"] = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) else ""
    return env


def report_kind(report: Report) -> str:
    kinds = {t.kind for t in report.targets}
    if "fleet" in report.extra:
        return "fleet"
    if "netns" in kinds:
        return "netns"
    if kinds == {"config"}:
        return "lint"
    return "host"


_TITLES = {"fleet": "fleet report", "netns": "network namespaces", "lint": "config lint", "host": "host report"}
_NOUN = {"fleet": "host", "netns": "target", "lint": "target", "host": "target"}


def build_view(report: Report, metas: list[Any] | None = None) -> dict[str, Any]:
    """Everything the template shows, already cleaned."""
    if metas is None:
        from ..catalogue import metas as catalogue_metas

        metas = catalogue_metas()
    meta_by_id = {m.id: m for m in metas}
    raw_fleet = report.extra.get("fleet")
    fleet: dict[str, Any] = raw_fleet if isinstance(raw_fleet, dict) else {}
    groups_raw = fleet.get("groups") if isinstance(fleet.get("groups"), dict) else {}
    groups = {str(k): str(v) for k, v in (groups_raw or {}).items()}
    kind = report_kind(report)
    rules = _rule_columns(report)
    rows = _rows(report, rules, groups)
    audited = sum(1 for t in report.targets if t.status in AUDITED)
    sections = _sections(report, rules, meta_by_id, audited)

    s = report.summary
    by_sev = [(lvl, s.by_severity.get(lvl, 0)) for lvl in reversed(_levels.ORDER)]
    statuses = Counter(t.status.value for t in report.targets)
    status_items = [
        (st, statuses[st], "st-ok" if st == "ok" else "st-partial" if st in ("partial", "skipped") else "st-bad", "")
        for st in _STATUS_ORDER
        if statuses.get(st)
    ]
    status_bars = _bars(status_items)
    rule_items = []
    for sec in sections:
        if sec.hosts:
            rule_items.append((sec.id, sec.hosts, f"sev-{sec.severity}", f"{sec.hosts}/{sec.of}"))
    rule_items.sort(key=lambda x: (-x[1], -_levels.rank(x[2].removeprefix("sev-")), x[0]))
    rule_bars = _bars(rule_items[:40])

    unaudited = [r for r in rows if not r.audited]
    partial = [r for r in rows if r.status == TargetStatus.partial.value]
    group_names = sorted({r.group for r in rows})
    elapsed = _num(fleet.get("elapsed_s"))
    targets_detail = []
    for i, t in enumerate(report.targets):
        targets_detail.append(
            {
                "row": rows[i],
                "error": _t(t.error or "", 500),
                "context": [_t(c, 500) for c in t.context],
                "gaps": [_t(g, 500) for g in t.gaps],
                "notes": [_t(n, 500) for n in t.kernel_notes],
                "files": [_t(f, 300) for f in t.files],
                "netns": _netns_detail(t),
                "checks": [
                    (_t(c.rule, 40), c.outcome.value, _t(c.reason, 300))
                    for c in t.checks
                    if c.outcome not in (Outcome.passed, Outcome.not_applicable)
                ],
                "passed": sum(1 for c in t.checks if c.outcome is Outcome.passed),
                "not_applicable": sum(1 for c in t.checks if c.outcome is Outcome.not_applicable),
            }
        )
    noun = _NOUN[kind]
    return {
        "kind": kind,
        "title": "tcpaudit " + _TITLES[kind],
        "noun": noun,
        "version": _t(report.tool.version, 40),
        "summary": s,
        "verdict": "failed" if s.exit_code else "passed",
        "by_severity": by_sev,
        "statuses": status_items,
        "status_bars": status_bars,
        "rule_bars": rule_bars,
        "rules": rules,
        "rule_titles": {sec.id: sec.title for sec in sections},
        "rows": rows,
        "has_groups": len(group_names) > 1 or bool(groups),
        "groups": group_names,
        "unaudited": unaudited,
        "partial": partial,
        "sections": sections,
        "drift": _drift(fleet),
        "is_fleet": kind == "fleet",
        "fleet_hosts": fleet.get("hosts") if isinstance(fleet.get("hosts"), int) else len(report.targets),
        "elapsed": elapsed,
        "timeline": _timeline(report, fleet) if fleet else None,
        "targets": targets_detail,
        "audited": audited,
        "plot": {"w": PLOT_W, "tw": TIMELINE_W, "label_w": LABEL_W, "bar_h": BAR_H},
        "levels": list(reversed(_levels.ORDER)),
        "letters": _SEV_LETTER,
    }


def _netns_detail(t: Target) -> list[tuple[str, str]]:
    ns = t.netns
    if ns is None:
        return []
    items = [
        ("inode", str(ns.inode)),
        ("name", _t(ns.name, 300) + f" (from {_t(ns.name_source, 40)})"),
        ("pids", _t(" ".join(str(p) for p in ns.pids[:50]) + (" …" if len(ns.pids) > 50 else ""), 400)),
    ]
    for label, value in (
        ("pod", ns.pod),
        ("pod uid", ns.pod_uid),
        ("QoS class", ns.qos_class),
        ("container", ns.container_id),
    ):
        if value:
            items.append((label, _t(value, 300)))
    if ns.bind_mounts:
        items.append(("bind mounts", _t(", ".join(ns.bind_mounts), 600)))
    if ns.is_host:
        items.append(("host namespace", "yes"))
    return items


def render(report: Report, metas: list[Any] | None = None, **_: object) -> str:
    """`metas` defaults to the whole catalogue (tests pass a fixed list to keep golden files stable)."""
    view = build_view(report, metas)
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        "default-src 'none'; "
        f"style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    data = script_json(report.model_dump(mode="json"))
    template = _environment().get_template("report.html.j2")
    return template.render(
        v=view,
        csp=csp,
        css=Markup(css),  # our own files, checked for a closing tag by _asset
        js=Markup(js),
        data=Markup(data),  # script_json: cannot close its element
    )
