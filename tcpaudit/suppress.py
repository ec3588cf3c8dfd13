"""Suppressions, applied after the rules ran: inline comments, waivers, baselines.

A suppressed finding stays in the report (every format shows it as suppressed) and does not
count toward --fail-on. Precedence when several match: inline (in the file itself), then a
waiver from `.tcpaudit.toml`, then a baseline. Error outcomes (a rule that crashed) are never
suppressed: nothing was checked.

- Waiver: `[[waiver]] rule, target (glob on the target name or the finding's file), reason,
  expires`. A waiver is valid through its `expires` date; after that it stops suppressing and the
  finding says "waiver expired on DATE".
- Baseline: `tcpaudit baseline -o FILE` records the fingerprints of today's findings;
  `--baseline FILE` suppresses exactly those, so only new findings fail the build.
- Inline: `# tcpaudit: ignore[RULE,...] reason` on the key's line or the line before it.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from . import __version__
from .config import Waiver
from .model import Finding, Outcome, Suppression, Target

BASELINE_VERSION = 1


class BaselineError(ValueError):
    pass


class BaselineEntry(BaseModel):
    rule: str
    target: str
    file: str | None = None


class Baseline(BaseModel):
    version: int = BASELINE_VERSION
    tool: str = f"tcpaudit {__version__}"
    created: str = ""
    fingerprints: dict[str, BaselineEntry] = Field(default_factory=dict)
    path: str | None = Field(None, exclude=True)


def make_baseline(targets: Iterable[Target], now: _dt.datetime | None = None) -> Baseline:
    """Fingerprints of every current, unsuppressed finding (waived and inline-ignored ones stay out,
    so an expiring waiver still expires)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    b = Baseline(created=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for t in targets:
        for f in t.findings:
            if f.suppressed is None and f.outcome is Outcome.fail and f.fingerprint:
                b.fingerprints[f.fingerprint] = BaselineEntry(
                    rule=f.rule, target=t.name, file=f.location.file if f.location else None
                )
    b.fingerprints = dict(sorted(b.fingerprints.items()))
    return b


def dump_baseline(b: Baseline) -> str:
    return json.dumps(b.model_dump(mode="json"), indent=2) + "\n"


def load_baseline(path: str | Path) -> Baseline:
    p = Path(path)
    try:
        data = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{p}: cannot read baseline: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BaselineError(
            f"{p}: not a tcpaudit baseline (not UTF-8 text; `tcpaudit baseline -o FILE` writes one)"
        ) from None
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise BaselineError(
            f"{p}: not a tcpaudit baseline (not valid JSON; `tcpaudit baseline -o FILE` writes one)"
        ) from None
    if not (isinstance(raw, dict) and "fingerprints" in raw and "version" in raw):
        from .loading import identify_json

        what = identify_json(raw)
        raise BaselineError(
            f"{p}: not a tcpaudit baseline"
            + (f": it is {what}" if what else " (no version and fingerprints; `tcpaudit baseline -o FILE` writes one)")
        )
    try:
        b = Baseline.model_validate(raw)
    except ValidationError as exc:
        from .validation import first_error

        raise BaselineError(f"{p}: not a tcpaudit baseline ({first_error(exc, 'file')})") from None
    if b.version > BASELINE_VERSION:
        raise BaselineError(f"{p}: baseline version {b.version} is newer than this tcpaudit understands")
    b.path = str(p)
    return b


def _rule_matches(wanted: Iterable[str], rule: str) -> bool:
    from .rules.engine import resolve_ids

    return rule in resolve_ids(wanted)


def _waiver_matches(w: Waiver, target: Target, f: Finding) -> bool:
    if not _rule_matches([w.rule], f.rule):
        return False
    names = [target.name] + ([f.location.file] if f.location else [])
    return any(fnmatch.fnmatchcase(n, w.target) for n in names)


def apply_suppressions(
    target: Target,
    *,
    waivers: Iterable[Waiver] = (),
    baseline: Baseline | None = None,
    inline: Iterable[object] = (),
    today: _dt.date | None = None,
) -> Target:
    """Mark the target's findings suppressed in place (and return it)."""
    today = today or _dt.date.today()
    waivers = list(waivers)
    inline = list(inline)
    for f in target.findings:
        if f.outcome is Outcome.error:
            continue
        f.suppressed = _inline_for(f, inline) or _waiver_for(f, target, waivers, today) or _baseline_for(f, baseline)
    return target


def _inline_for(f: Finding, inline: list) -> Suppression | None:
    if f.location is None:
        return None
    for ig in inline:
        if ig.location == f.location and _rule_matches(ig.rules, f.rule):
            return Suppression(kind="inline", reason=ig.reason, source=f"{ig.directive.file}:{ig.directive.line}")
    return None


def _waiver_for(f: Finding, target: Target, waivers: list[Waiver], today: _dt.date) -> Suppression | None:
    expired: list[Waiver] = []
    for w in waivers:
        if not _waiver_matches(w, target, f):
            continue
        if w.expires is not None and w.expires < today:
            expired.append(w)
            continue
        return Suppression(
            kind="waiver",
            reason=w.reason,
            expires=w.expires.isoformat() if w.expires else None,
            source=f"waiver {w.rule} target {w.target}",
        )
    if expired and "waiver" not in f.evidence:
        w = max(expired, key=lambda x: x.expires or today)
        note = f"waiver expired on {w.expires.isoformat() if w.expires else ''}"
        f.evidence["waiver"] = f"{note} (reason was: {w.reason})"
        f.explanation = (f.explanation + " " if f.explanation else "") + (
            f"A waiver for this finding expired on {w.expires}; it no longer suppresses it. Fix the setting, or "
            "renew the waiver with a new expiry date if the reason still holds."
        )
    return None


def _baseline_for(f: Finding, baseline: Baseline | None) -> Suppression | None:
    if baseline is None or f.fingerprint not in baseline.fingerprints:
        return None
    when = f" on {baseline.created[:10]}" if baseline.created else ""
    return Suppression(
        kind="baseline", reason=f"already present when the baseline was recorded{when}", source=baseline.path
    )
