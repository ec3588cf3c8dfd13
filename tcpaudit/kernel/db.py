"""Load, validate and query the kernel knowledge base (``kernel_db/*.toml``).

The data ships inside the package as ``tcpaudit.kernel_db``.  Loading is pure:
the only I/O is reading the TOML files.  Every fact must carry a ``source``
(a commit, a file at a tag/commit, or a URL) and a ``confidence``; an entry
without one makes :func:`load_kernel_db` raise :class:`KernelDBError` naming
the file and the entry.

Version bounds are upstream mainline versions: ``since`` inclusive, ``until``
exclusive.  Lookups use the release's *upstream* version; distribution kernels
(SUSE, RHEL, Ubuntu, ...) backport changes, which is why issue status prefers
host evidence (sysctls) and observed distro data points over the version table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from ._base import (
    _HEX_RE,
    Confidence,
    KernelDBError,
    Source,
    _build,
    _check_bounds,
    _first_error,
    _in_range,
    _Model,
    _parse_bound,
    _Ranged,
    _read_toml,
    normalize_sysctl_name,
)
from .effects import EFFECTS_FILE, EffectsDB, load_effects_db
from .kubernetes import KUBERNETES_FILE, KubeletSafeSysctls, load_kubernetes_db
from .release import KernelRelease

__all__ = [
    "IssueStatus",
    "KernelDB",
    "KernelDBError",
    "KnownIssue",
    "Source",
    "SysctlFact",
    "load_kernel_db",
    "normalize_sysctl_name",
]

SYSCTLS_FILE = "sysctls.toml"
ISSUES_FILE = "issues.toml"

SysctlType = Literal["bool", "int", "int_vector", "port_range", "port_list", "string"]

_ISSUE_ID_RE = re.compile(r"^KI-[A-Z0-9]+(?:-[A-Z0-9]+)*$")
_SYSCTL_NAME_RE = re.compile(r"^net(?:\.[a-z0-9_]+)+$")


# ---------------------------------------------------------------------------
# models


class ExistsRange(_Ranged):
    """The sysctl exists in ``[since, until)``."""


class DefaultRange(_Ranged):
    """Upstream default value in ``[since, until)``; ``computed`` marks a formula/description."""

    value: str
    computed: bool = False


class BoundsRange(_Ranged):
    """The value range the kernel's handler enforces in ``[since, until)``; ``min``/``max`` None = no bound."""

    min: int | None = None
    max: int | None = None


class NetnsRange(_Ranged):
    """Whether the sysctl is per network namespace in ``[since, until)``."""

    value: bool


def _pick(ranges: list[Any], release: KernelRelease) -> Any | None:
    """The range containing ``release``; the one with the latest ``since`` wins."""
    hits = [entry for entry in ranges if entry.contains(release)]
    if not hits:
        return None
    return max(hits, key=lambda entry: _parse_bound(entry.since))


class SysctlFact(_Model):
    name: str
    type: SysctlType
    unit: str | None = None
    min: int | None = None
    max: int | None = None
    summary: str
    meaning: dict[str, str] = Field(default_factory=dict)
    notes: str | None = None
    aliases: list[str] = Field(default_factory=list)
    confidence: Confidence
    source: Source
    exists: list[ExistsRange] = Field(min_length=1)
    defaults: list[DefaultRange] = Field(default_factory=list)
    per_netns: list[NetnsRange] = Field(default_factory=list)
    bounds: list[BoundsRange] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _SYSCTL_NAME_RE.match(value):
            raise ValueError(f"sysctl name {value!r} must be fully qualified (net.ipv4.tcp_sack)")
        return value

    @model_validator(mode="after")
    def _range_sane(self) -> SysctlFact:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    # -- presence -------------------------------------------------------
    def _presence(self, release: KernelRelease) -> tuple[bool | None, ExistsRange]:
        hit = _pick(self.exists, release)
        if hit is not None:
            # an inexact since answers only from the first verified release on: unknown before it
            return (True if hit.vouches_for(release) else None), hit
        earliest = min(self.exists, key=lambda entry: _parse_bound(entry.since))
        if release < _parse_bound(earliest.since):
            return (False if earliest.since_exact else None), earliest
        # after some range ended and no later range started: removed
        ended = [e for e in self.exists if e.until is not None and not release < _parse_bound(e.until)]
        last = max(ended, key=lambda entry: _parse_bound(entry.until or entry.since)) if ended else earliest
        return False, last

    def present_in(self, release: KernelRelease) -> bool | None:
        """True/False from the upstream table; None when the table cannot tell."""
        return self._presence(release)[0]

    def source_for_presence(self, release: KernelRelease) -> Source | None:
        return self._presence(release)[1].source

    def default_in(self, release: KernelRelease) -> str | None:
        if self.present_in(release) is False:
            return None
        hit = _pick(self.defaults, release)
        return hit.value if hit is not None else None

    def default_entry(self, release: KernelRelease) -> DefaultRange | None:
        if self.present_in(release) is False:
            return None
        return _pick(self.defaults, release)

    def per_netns_in(self, release: KernelRelease) -> bool | None:
        if self.present_in(release) is False:
            return None
        hit = _pick(self.per_netns, release)
        return hit.value if hit is not None and hit.vouches_for(release) else None

    # -- value validation ----------------------------------------------
    def _int(self, text: str) -> tuple[int | None, str | None]:
        try:
            value = int(text, 10)
        except ValueError:
            return None, f"{self.name}: {text[:40]!r} is not an integer"
        return value, None

    def limits_in(self, release: KernelRelease | None) -> tuple[int | None, int | None]:
        """(min, max) the kernel enforces on ``release``; the table-level min/max (newest kernels) when the
        release is None or the ``bounds`` ranges cannot tell."""
        if release is None or not self.bounds:
            return self.min, self.max
        hit = _pick(self.bounds, release)
        if hit is not None:
            return hit.min, hit.max
        earliest = min(self.bounds, key=lambda entry: _parse_bound(entry.since))
        if release < _parse_bound(earliest.since):
            # before the first bounded release: unbounded (since_exact) or not known -- either way nothing
            # may be reported as rejected
            return None, None
        return self.min, self.max

    def _bounds(self, value: int, what: str = "value", release: KernelRelease | None = None) -> str | None:
        lo, hi = self.limits_in(release)
        on = f" on {release.upstream}" if release is not None else ""
        if lo is not None and value < lo:
            return f"{self.name}: {what} {value} is below the minimum {lo}{on} (the kernel returns EINVAL)"
        if hi is not None and value > hi:
            return f"{self.name}: {what} {value} is above the maximum {hi}{on} (the kernel returns EINVAL)"
        return None

    def validate_value(self, raw: str, release: KernelRelease | None = None) -> str | None:
        """None if ``raw`` is acceptable for this sysctl (on ``release``; None = a current kernel), else a
        one-line reason."""
        if not isinstance(raw, str):
            return f"{self.name}: value must be a string, got {type(raw).__name__}"
        if "\n" in raw.strip() or "\r" in raw:
            return f"{self.name}: value must be a single line"
        text = raw.strip()
        if self.type == "string":
            return None
        if self.type in ("bool", "int"):
            if not text:
                return f"{self.name}: empty value"
            value, err = self._int(text)
            if err:
                return err
            assert value is not None
            return self._bounds(value, release=release)
        if self.type == "int_vector":
            parts = text.split()
            if not parts:
                return f"{self.name}: empty value"
            for part in parts:
                value, err = self._int(part)
                if err:
                    return err
                assert value is not None
                bound = self._bounds(value, "element", release)
                if bound:
                    return bound
            return None
        if self.type == "port_range":
            parts = text.split()
            # One field is accepted: proc_dointvec_minmax fills range[0] only and the high end stays as it was
            # (checked on 6.18: `echo 40000 > ip_local_port_range` gives '40000 60999'); LOW > HIGH is EINVAL.
            if len(parts) not in (1, 2):
                return f"{self.name}: expected two ports 'LOW HIGH', got {len(parts)} field(s)"
            ports = []
            for part in parts:
                value, err = self._int(part)
                if err:
                    return err
                assert value is not None
                lo_bound = self.min if self.min is not None else 1
                hi_bound = self.max if self.max is not None else 65535
                if not lo_bound <= value <= hi_bound:
                    return f"{self.name}: port {value} is outside {lo_bound}..{hi_bound}"
                ports.append(value)
            if len(ports) == 2 and ports[0] > ports[1]:
                return f"{self.name}: low port {ports[0]} is above high port {ports[1]} (kernel returns EINVAL)"
            return None
        if self.type == "port_list":
            if not text:
                return None
            lo_bound = self.min if self.min is not None else 0
            hi_bound = self.max if self.max is not None else 65535
            for item in text.split(","):
                item = item.strip()
                if not item:
                    return f"{self.name}: empty item in port list {text[:40]!r}"
                bounds = item.split("-")
                if len(bounds) > 2:
                    return f"{self.name}: bad port range {item[:20]!r}"
                numbers = []
                for bound in bounds:
                    value, err = self._int(bound.strip())
                    if err:
                        return err
                    assert value is not None
                    if not lo_bound <= value <= hi_bound:
                        return f"{self.name}: port {value} is outside {lo_bound}..{hi_bound}"
                    numbers.append(value)
                if len(numbers) == 2 and numbers[0] > numbers[1]:
                    return f"{self.name}: range {item!r} is reversed"
            return None
        return f"{self.name}: unknown type {self.type!r}"  # pragma: no cover


class Backport(_Model):
    kind: Literal["fix", "introduced"] = "fix"
    series: str
    version: str | None = None
    commit: str | None = None
    confidence: Confidence
    source: Source
    note: str | None = None

    @field_validator("series")
    @classmethod
    def _series_form(cls, value: str) -> str:
        if not re.match(r"^\d+\.\d+$", value):
            raise ValueError(f"series {value!r} must be X.Y")
        return value

    @model_validator(mode="after")
    def _version_in_series(self) -> Backport:
        if self.version is not None:
            release = _parse_bound(self.version)
            if release.series != self.series:
                raise ValueError(f"version {self.version!r} is not in series {self.series!r}")
        if self.commit is not None and not _HEX_RE.match(self.commit):
            raise ValueError(f"commit {self.commit!r} must be 12-40 lower-case hex digits")
        return self


class DistroPoint(_Model):
    flavour: str
    match: str
    status: Literal["affected", "fixed", "not_affected", "unknown"]
    confidence: Literal["observed", "high", "medium", "low"]
    source: Source
    note: str | None = None

    def matches(self, release: KernelRelease) -> bool:
        return release.flavour == self.flavour and release.raw.startswith(self.match)


class SysctlEvidence(_Model):
    name: str
    present_means: Literal["fixed", "affected"]
    affected_values: list[str] | None = None
    source: Source
    note: str | None = None

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _SYSCTL_NAME_RE.match(value):
            raise ValueError(f"sysctl name {value!r} must be fully qualified")
        return value


class Affects(_Model):
    since: str | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Affects:
        for bound in (self.since, self.until):
            if bound is not None:
                _parse_bound(bound)
        _check_bounds(self.since, self.until)
        return self


class IssueStatus(_Model):
    id: str
    title: str
    applies: bool | None
    confidence: str
    reason: str
    fixed_in: str | None = None
    source: Source


_STATUS_APPLIES = {"affected": True, "fixed": False, "not_affected": False, "unknown": None}
# Distribution kernels whose version does not track upstream stable point releases.
_REBASED_FLAVOURS = frozenset({"ubuntu", "debian", "rhel", "suse"})


def _lookup_sysctl(sysctls: Mapping[str, str], name: str) -> tuple[bool, str | None]:
    if name in sysctls:
        return True, sysctls[name]
    for key, value in sysctls.items():
        if normalize_sysctl_name(key) == name:
            return True, value
    return False, None


class KnownIssue(_Model):
    id: str
    title: str
    summary: str
    category: str | None = None
    confidence: Confidence
    source: Source
    affects: Affects = Field(default_factory=Affects)
    fix: Source | None = None
    introduced_by: Source | None = None
    related: list[Source] = Field(default_factory=list)
    backports: list[Backport] = Field(default_factory=list)
    distro: list[DistroPoint] = Field(default_factory=list)
    sysctl_evidence: SysctlEvidence | None = None
    workaround: str | None = None
    references: list[str] = Field(default_factory=list)
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not _ISSUE_ID_RE.match(value):
            raise ValueError(f"issue id {value!r} must look like KI-CT-CHALLENGE-ACK-RST")
        return value

    @property
    def fixed_in_mainline(self) -> str | None:
        if self.fix is not None and self.fix.tag:
            return self.fix.tag
        return f"v{self.affects.until}" if self.affects.until else None

    def _status(
        self, applies: bool | None, confidence: str, reason: str, source: Source, fixed_in: str | None = None
    ) -> IssueStatus:
        return IssueStatus(
            id=self.id,
            title=self.title,
            applies=applies,
            confidence=confidence,
            reason=reason,
            fixed_in=fixed_in if fixed_in is not None else self.fixed_in_mainline,
            source=source,
        )

    def _range_text(self) -> str:
        since, until = self.affects.since, self.affects.until
        if since is None and until is None:
            return "all upstream versions"
        if since is None:
            return f"upstream kernels before {until}"
        if until is None:
            return f"upstream {since} onwards"
        return f"upstream {since} until {until}"

    def _infer(self, release: KernelRelease) -> IssueStatus:
        """Inference from the upstream version table (and stable backports)."""
        in_range = _in_range(release, self.affects.since, self.affects.until)
        # A distribution build that states its upstream stable point release (tcpaudit.kernel.release.
        # parse_host_release) is judged like that stable release: its stable backports count.
        rebased = release.flavour in _REBASED_FLAVOURS and release.point_source is None
        series_fix = [b for b in self.backports if b.kind == "fix" and b.series == release.series]
        series_intro = [b for b in self.backports if b.kind == "introduced" and b.series == release.series]
        table_conf = self.confidence
        if rebased and (self.affects.since is not None or self.affects.until is not None):
            return self._infer_rebased(release, in_range)
        if not in_range and series_intro:
            intro = series_intro[0]
            fix = series_fix[0] if series_fix else None
            if fix and fix.version and release >= _parse_bound(fix.version):
                return self._status(
                    False, fix.confidence, f"stable {fix.version} carries the fix", fix.source, fix.version
                )
            if intro.version is None:
                return self._status(
                    None,
                    "low",
                    f"the change was backported to {intro.series}.y (point release unverified)",
                    intro.source,
                )
            if release >= _parse_bound(intro.version):
                return self._status(
                    True,
                    intro.confidence,
                    f"the change was backported to stable {intro.version}",
                    intro.source,
                    fix.version if fix and fix.version else None,
                )
            return self._status(
                False,
                intro.confidence,
                f"before stable {intro.version}, which brought the change",
                intro.source,
            )
        if not in_range:
            if self.affects.until and not release < _parse_bound(self.affects.until):
                why = f"{release.upstream} is at or after the fix ({self._range_text()})"
            else:
                why = f"{release.upstream} predates the affected range ({self._range_text()})"
            return self._status(False, table_conf, why, self.fix or self.source)
        for fix in series_fix:
            if fix.version is None:
                return self._status(
                    None,
                    "low",
                    f"a fix was backported to {fix.series}.y (point release unverified)",
                    fix.source,
                )
            if release >= _parse_bound(fix.version):
                return self._status(
                    False, fix.confidence, f"stable {fix.version} carries the fix", fix.source, fix.version
                )
            return self._status(
                True,
                fix.confidence,
                f"{release.upstream} is in the affected range ({self._range_text()}); fixed in stable {fix.version}",
                fix.source,
                fix.version,
            )
        return self._status(
            True,
            table_conf,
            f"{release.upstream} is in the affected range ({self._range_text()})",
            self.introduced_by or self.source,
        )

    def _infer_rebased(self, release: KernelRelease, in_range: bool) -> IssueStatus:
        """Ubuntu/Debian/RHEL/SUSE: the declared base version is only a lower bound of the code.

        A base at or after the mainline fix contains the fix.  Otherwise the
        vendor may have backported the fix (or, for a regression, the bug), so
        the answer is unknown unless the issue is a plain behaviour change.
        """
        prefix = f"{release.flavour} kernel {release.raw} (declared upstream base {release.upstream})"
        until = self.affects.until
        if until is not None and not release < _parse_bound(until):
            return self._status(
                False,
                "high",
                f"{prefix} is based on a release at or after the mainline change ({self._range_text()})",
                self.fix or self.source,
            )
        if not in_range:
            if self.introduced_by is None:
                return self._status(
                    False,
                    "medium",
                    f"{prefix} predates the behaviour ({self._range_text()}); vendors rarely backport it",
                    self.source,
                )
            return self._status(
                None,
                "low",
                f"{prefix} predates the upstream change ({self._range_text()}), but vendors "
                "backport commits, so whether this build has it is unknown",
                self.introduced_by,
            )
        if self.fix is None:
            return self._status(True, "high", f"{prefix} is in the affected range ({self._range_text()})", self.source)
        return self._status(
            None,
            "low",
            f"{prefix} is inside the affected range ({self._range_text()}), but this distribution "
            "backports fixes, so the build's real status is unknown",
            self.source,
        )

    def _distro_point(self, release: KernelRelease) -> DistroPoint | None:
        hits = [point for point in self.distro if point.matches(release)]
        return max(hits, key=lambda point: len(point.match)) if hits else None

    def status_for(self, release: KernelRelease, sysctls: Mapping[str, str] | None = None) -> IssueStatus:
        """Does this issue apply to ``release``?

        Order of precedence: the host's own sysctls (``sysctl_evidence``), then
        observed distribution data points, then the upstream version table.
        """
        inferred = self._infer(release)
        if release.point_source is not None and release.flavour in _REBASED_FLAVOURS:
            # judged as the stable release the build states; the distribution's own patches are not known
            inferred = inferred.model_copy(
                update={
                    "confidence": "medium" if inferred.confidence in ("verified", "high") else inferred.confidence,
                    "reason": f"{inferred.reason} ({release.flavour} {release.raw} judged as upstream "
                    f"{release.upstream}, from {release.point_source}; its own patches beyond stable are not known)",
                }
            )
        point = self._distro_point(release)
        if point is not None:
            base = self._status(
                _STATUS_APPLIES[point.status],
                point.confidence,
                f"{point.status.replace('_', ' ')} for {point.flavour} {point.match}"
                + (f": {point.note}" if point.note else ""),
                point.source,
            )
            if point.status == "unknown":
                base = base.model_copy(update={"reason": base.reason + f"; version table: {inferred.reason}"})
        else:
            base = inferred
        evidence = self.sysctl_evidence
        if sysctls is None or evidence is None:
            return base
        present, value = _lookup_sysctl(sysctls, evidence.name)
        if evidence.present_means == "fixed":
            applies = not present
            what = f"host has {evidence.name}" if present else f"host lacks {evidence.name}"
        else:
            if not present:
                applies, what = False, f"host lacks {evidence.name}"
            elif evidence.affected_values is None or (value or "").strip() in evidence.affected_values:
                applies, what = True, f"host has {evidence.name} = {(value or '').strip()!r}"
            else:
                applies, what = False, f"host has {evidence.name} = {(value or '').strip()!r} (not enabled)"
        reason = f"evidence: {what}"
        if base.applies is not None and base.applies != applies:
            reason += (
                f"; the version table disagreed ({base.reason}) -- "
                "likely a distribution backport or a kernel that differs from upstream"
            )
        elif base.applies is None:
            reason += f"; the version table could not decide ({base.reason})"
        return self._status(applies, "evidence", reason, evidence.source)


class KernelDB(_Model):
    sysctls: dict[str, SysctlFact]
    issues: dict[str, KnownIssue]
    # Loaded with the rest so rules get all knowledge through Facts.kdb and never read a file themselves;
    # None for a custom knowledge-base directory that does not hold effects.toml / kubernetes.toml.
    effects: EffectsDB | None = None
    kubernetes: KubeletSafeSysctls | None = None

    # Answers memoised per name and release: the knowledge base is immutable, and a lint of hundreds of
    # files asks the same few dozen questions for every file (docs/benchmarks.md).
    _memo: dict[Any, Any] = PrivateAttr(default_factory=dict)

    def sysctl(self, name: str) -> SysctlFact | None:
        """Fact for a fully qualified name (``net.ipv4.tcp_sack``) or ``net/ipv4/tcp_sack``."""
        memo_key = ("fact", name)
        if memo_key in self._memo:
            return self._memo[memo_key]
        key = normalize_sysctl_name(name)
        fact = self.sysctls.get(key)
        if fact is None:
            fact = next((c for c in self.sysctls.values() if key in c.aliases), None)
        self._memo[memo_key] = fact
        return fact

    def kernel_value(
        self, name: str, release: KernelRelease
    ) -> tuple[Literal["default", "absent", "unknown"], str | None]:
        """What a kernel of `release` holds for `name` with nothing configured: its default, absent, or unknown."""
        memo_key = ("value", name, release)
        if memo_key not in self._memo:
            fact = self.sysctl(name)
            present = fact.present_in(release) if fact is not None else None
            if present is False:
                answer: tuple[Any, str | None] = ("absent", None)
            elif present is None:
                answer = ("unknown", None)
            else:
                answer = ("default", fact.default_in(release))  # type: ignore[union-attr]
            self._memo[memo_key] = answer
        return self._memo[memo_key]

    def issue(self, issue_id: str) -> KnownIssue | None:
        return self.issues.get(issue_id)

    def issues_for(self, release: KernelRelease, sysctls: Mapping[str, str] | None = None) -> list[IssueStatus]:
        return [self.issues[key].status_for(release, sysctls) for key in sorted(self.issues)]


# ---------------------------------------------------------------------------
# loading


def _load(path: Path | None) -> KernelDB:
    raw_sysctls = _read_toml(path, SYSCTLS_FILE)
    raw_issues = _read_toml(path, ISSUES_FILE)
    sysctls = {key: _build(SysctlFact, SYSCTLS_FILE, key, body, name=key) for key, body in raw_sysctls.items()}
    issues = {key: _build(KnownIssue, ISSUES_FILE, key, body, id=key) for key, body in raw_issues.items()}
    for fact in sysctls.values():
        for alias in fact.aliases:
            if alias in sysctls:
                raise KernelDBError(f"{SYSCTLS_FILE}: entry {fact.name!r}: alias {alias!r} is also an entry")
    for issue in issues.values():
        if issue.sysctl_evidence and issue.sysctl_evidence.name not in sysctls:
            raise KernelDBError(
                f"{ISSUES_FILE}: entry {issue.id!r}: sysctl_evidence {issue.sysctl_evidence.name!r} "
                f"has no entry in {SYSCTLS_FILE}"
            )
    extra: dict[str, Any] = {}
    for field, file, loader in (
        ("effects", EFFECTS_FILE, load_effects_db),
        ("kubernetes", KUBERNETES_FILE, load_kubernetes_db),
    ):
        if path is None or (path / file).is_file():
            extra[field] = loader(path)
    try:
        return KernelDB(sysctls=sysctls, issues=issues, **extra)
    except ValidationError as exc:  # pragma: no cover - models already validated
        raise KernelDBError(f"kernel_db: {_first_error(exc)}") from None


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> KernelDB:
    return _load(Path(path) if path is not None else None)


def load_kernel_db(path: Path | None = None) -> KernelDB:
    """Load and validate the knowledge base (the packaged one when ``path`` is None).

    ``path`` is a directory holding ``sysctls.toml`` and ``issues.toml``.
    Results are cached per path; the returned object is immutable.
    """
    return _load_cached(str(Path(path).resolve()) if path is not None else None)
