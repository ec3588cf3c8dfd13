"""What a new network namespace gets for each sysctl (``kernel_db/netns.toml``).

Most ``net.*`` sysctls are per network namespace, and a namespace created by a container runtime
does not see the host's tuning: depending on the key and the kernel it gets the compiled default,
a copy of the initial namespace's value taken at creation, a value derived from its creator
(the TCP hash size from ``tcp_child_ehash_entries``), whatever ``net.core.devconf_inherit_init_net``
says for ``conf/*`` entries, or no file at all because the key is host-wide. Like every kernel
fact, each range carries a source and a confidence; a bad entry makes :func:`load_netns_db` raise
:class:`KernelDBError` naming the file and the entry.

:meth:`NetnsDB.expect` turns a fact into the value a namespace created from the initial namespace
runs with on a given kernel, when that can be computed from what was read; :func:`classify` compares
it with the host's and the namespace's own values. Both are pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import _load_named_entries
from .db import (
    Confidence,
    Source,
    _check_bounds,
    _in_range,
    _Model,
    _parse_bound,
)
from .release import KernelRelease

__all__ = [
    "Expectation",
    "NetnsDB",
    "NetnsKey",
    "DistroRange",
    "NetnsRange",
    "classify",
    "load_netns_db",
]

NETNS_FILE = "netns.toml"

Kind = Literal["default", "copy_init_net", "derived", "devconf", "global", "state"]
Derive = Literal["ehash_half", "ehash_div128_min128"]
Verdict = Literal["not_inherited", "inherited", "own_value", "same_as_host", "unknown"]

_NAME_RE = re.compile(r"^net(?:\.[a-z0-9_]+)+$")
CHILD_EHASH = "net.ipv4.tcp_child_ehash_entries"
EHASH = "net.ipv4.tcp_ehash_entries"
DEVCONF_MODE = "net.core.devconf_inherit_init_net"

KIND_TEXT: dict[str, str] = {
    "default": "compiled default",
    "copy_init_net": "copy of the host's value at creation",
    "derived": "derived from the creator's tcp_child_ehash_entries",
    "devconf": "per net.core.devconf_inherit_init_net",
    "global": "host-wide (the host's value governs)",
    "state": "per-namespace counter",
}


class NetnsRange(_Model):
    """What a new namespace gets in ``[since, until)``."""

    since: str
    until: str | None = None
    since_exact: bool = True
    kind: Kind
    value: str | None = Field(None, description="default/devconf: the compiled value, as read from /proc/sys")
    computed: str | None = Field(None, description="default: how the value is computed when it is not a constant")
    derive: Derive | None = Field(None, description="derived: the formula applied to the hash size")
    family: Literal["ipv4", "ipv6"] | None = Field(None, description="devconf: which address family's table")
    visible: Literal["absent", "read_only"] | None = Field(None, description="global: how the namespace shows it")
    confidence: Confidence
    source: Source
    since_source: Source | None = Field(None, description="the change that started this range, when known")
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> NetnsRange:
        _check_bounds(self.since, self.until)
        if self.kind == "default" and self.value is None and self.computed is None and self.derive is None:
            raise ValueError("kind 'default' needs a value, computed or derive")
        if self.kind == "derived" and self.derive is None:
            raise ValueError("kind 'derived' needs derive")
        if self.kind == "devconf" and (self.family is None or self.value is None):
            raise ValueError("kind 'devconf' needs family and value (the compiled default)")
        if self.kind == "global" and self.visible is None:
            raise ValueError("kind 'global' needs visible = 'absent' or 'read_only'")
        if self.kind != "global" and self.visible is not None:
            raise ValueError("visible is only for kind 'global'")
        return self

    def contains(self, release: KernelRelease) -> bool:
        return _in_range(release, self.since, self.until)

    @property
    def per_namespace(self) -> bool:
        return self.kind != "global"

    def describe(self) -> str:
        """One phrase for tables and evidence: 'compiled default 7200', 'copy of the host's value at creation'."""
        text = KIND_TEXT[self.kind]
        if self.kind == "default":
            shown = self.value if self.value is not None else self.computed or self.derive or ""
            return f"{text} {shown!r}" if self.value == "" else f"{text} {shown}".strip()
        if self.kind == "derived" and self.derive:
            return f"{text} ({_DERIVE_TEXT[self.derive]})"
        if self.kind == "global" and self.visible:
            return f"{text}, {'absent' if self.visible == 'absent' else 'read-only'} in the namespace"
        return text


class DistroRange(NetnsRange):
    """A distribution kernel that differs from upstream (a backport): ``flavour`` as detected by
    tcpaudit.kernel.release, ``match`` a prefix of ``uname -r``; the longest match wins over the upstream
    ranges. ``since``/``until`` bound the upstream base it applies to."""

    flavour: str
    match: str = Field(min_length=3)

    def matches(self, release: KernelRelease) -> bool:
        return release.flavour == self.flavour and release.raw.startswith(self.match) and self.contains(release)


_DERIVE_TEXT = {"ehash_half": "hash entries / 2", "ehash_div128_min128": "max(128, hash entries / 128)"}


class NetnsKey(_Model):
    name: str
    summary: str = Field(min_length=5)
    new_netns: list[NetnsRange] = Field(min_length=1)
    distro: list[DistroRange] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"sysctl name {value!r} must be fully qualified (net.ipv4.tcp_sack)")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> NetnsKey:
        ordered = sorted(self.new_netns, key=lambda r: _parse_bound(r.since))
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a.until is None or _parse_bound(b.since) < _parse_bound(a.until):
                raise ValueError(f"ranges since {a.since!r} and since {b.since!r} overlap")
        return self

    def at(self, release: KernelRelease) -> NetnsRange | None:
        """The range containing ``release``; None when the table does not cover it (unknown, not 'global')."""
        backports = [d for d in self.distro if d.matches(release)]
        if backports:
            return max(backports, key=lambda d: len(d.match))
        hits = [r for r in self.new_netns if r.contains(release)]
        if not hits:
            return None
        return max(hits, key=lambda r: _parse_bound(r.since))


@dataclass(frozen=True)
class Expectation:
    """The value a namespace created from the initial namespace runs with, unless something set it."""

    name: str
    fact: NetnsRange
    value: str | None  # None: not computable from what was read (reason says why)
    reason: str = ""

    @property
    def kind(self) -> str:
        return self.fact.kind


def _fold(value: str | None) -> str | None:
    return " ".join(value.split()) if value is not None else None


def _int(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


def _pow2_roundup(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def _derive(formula: str, entries: int) -> str:
    if formula == "ehash_half":
        return str(entries // 2)
    return str(max(128, entries // 128))


class NetnsDB(_Model):
    keys: dict[str, NetnsKey]

    def fact(self, name: str, release: KernelRelease | None) -> NetnsRange | None:
        entry = self.keys.get(name)
        if entry is None or release is None:
            return None
        return entry.at(release)

    def expect(
        self,
        name: str,
        release: KernelRelease | None,
        host: Mapping[str, str],
        namespace: Mapping[str, str] | None = None,
    ) -> Expectation | None:
        """What a namespace created from the host's namespace gets for ``name``; None if the table has no fact.

        ``host`` holds the initial namespace's values (``Snapshot.init_net_sysctls``), ``namespace`` the
        namespace's own (its ``tcp_ehash_entries`` tells the hash size it really got).
        """
        fact = self.fact(name, release)
        if fact is None:
            return None
        ns = namespace or {}
        if fact.kind == "default":
            if fact.value is not None:
                return Expectation(name, fact, fact.value)
            if fact.derive is not None:
                return self._derived(name, fact, host, ns)
            return Expectation(name, fact, None, f"computed at boot ({fact.computed}); not comparable")
        if fact.kind == "copy_init_net":
            value = host.get(name)
            return Expectation(name, fact, _fold(value), "" if value is not None else "host value not read")
        if fact.kind == "derived":
            return self._derived(name, fact, host, ns)
        if fact.kind == "devconf":
            mode = _int(host.get(DEVCONF_MODE, ns.get(DEVCONF_MODE)))
            if mode is None:
                return Expectation(name, fact, None, f"{DEVCONF_MODE} not read")
            if fact.family == "ipv4":
                if mode in (0, 1):
                    return Expectation(name, fact, _fold(host.get(name)), f"{DEVCONF_MODE}={mode}: copy of init_net")
                if mode == 2:
                    return Expectation(name, fact, fact.value, f"{DEVCONF_MODE}=2: compiled default")
            elif mode == 1:
                return Expectation(name, fact, _fold(host.get(name)), f"{DEVCONF_MODE}=1: copy of init_net")
            elif mode in (0, 2):
                return Expectation(name, fact, fact.value, f"{DEVCONF_MODE}={mode}: compiled default")
            return Expectation(name, fact, None, f"{DEVCONF_MODE}={mode}: copied from the creating namespace")
        if fact.kind == "global":
            return Expectation(name, fact, _fold(host.get(name)) if fact.visible == "read_only" else None)
        return Expectation(name, fact, None, "a counter, not a setting")

    @staticmethod
    def _derived(name: str, fact: NetnsRange, host: Mapping[str, str], ns: Mapping[str, str]) -> Expectation:
        assert fact.derive is not None
        # The namespace's own tcp_ehash_entries is what it got (negative: it shares the global hash);
        # without it, the creator's (host's) child setting or the host's own hash size predicts it.
        own = _int(ns.get(EHASH))
        if own is not None and own != 0:
            return Expectation(name, fact, _derive(fact.derive, abs(own)), f"{EHASH}={own} in the namespace")
        child = _int(host.get(CHILD_EHASH))
        if child:
            return Expectation(name, fact, _derive(fact.derive, _pow2_roundup(child)), f"host {CHILD_EHASH}={child}")
        size = _int(host.get(EHASH))
        if child == 0 and size:
            return Expectation(name, fact, _derive(fact.derive, abs(size)), f"global hash, host {EHASH}={size}")
        return Expectation(name, fact, None, f"{EHASH} not read")


def classify(host: str | None, namespace: str | None, expected: str | None) -> Verdict:
    """How a namespace's value relates to the host's and to what a new namespace gets.

    not_inherited: the host runs another value and the namespace runs exactly what a new namespace gets;
    own_value: the namespace differs from both (pod sysctls, CNI tuning); inherited: the host's value is
    what a new namespace gets anyway; same_as_host: the namespace matches a host value it would not
    have got by itself (set there too); unknown: something was not read.
    """
    h, n, e = _fold(host), _fold(namespace), _fold(expected)
    if h is None or n is None or e is None:
        return "unknown"
    if h == e:
        return "inherited" if n == h else "own_value"
    if n == e:
        return "not_inherited"
    return "same_as_host" if n == h else "own_value"


def _load(path: Path | None) -> NetnsDB:
    return NetnsDB(keys=_load_named_entries(path, NETNS_FILE, NetnsKey))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> NetnsDB:
    return _load(Path(path) if path is not None else None)


def load_netns_db(path: Path | None = None) -> NetnsDB:
    """Load and validate ``netns.toml`` (the packaged one when ``path`` is None); cached, immutable."""
    return _load_cached(str(Path(path).resolve()) if path is not None else None)


TABLE_START = "<!-- netns-table:start (generated from netns.toml: python -m tcpaudit.kernel.netns --write) -->"
TABLE_END = "<!-- netns-table:end -->"


def _cite(src: Source | None) -> str:
    if src is None:
        return ""
    ref = src.commit[:12] if src.commit else src.tag or ""
    if src.file:
        return f"{src.file} @ {ref}" if ref else src.file
    return ref or (src.url or "")


def inheritance_table(db: NetnsDB | None = None) -> str:
    """The markdown table of kernel_db/README.md's inheritance section, generated from the data."""
    db = db or load_netns_db()
    lines = [
        "| sysctl | kernels | a new namespace gets | confidence | source | changed by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in sorted(db.keys):
        for rng in sorted(db.keys[name].new_netns, key=lambda r: _parse_bound(r.since)):
            span = f"{'' if rng.since_exact else '≤'}{rng.since}–{rng.until or ''}"
            lines.append(
                f"| `{name}` | {span} | {rng.describe().replace('|', '/')} | {rng.confidence} | "
                f"{_cite(rng.source)} | {_cite(rng.since_source)} |"
            )
        for d in db.keys[name].distro:
            lines.append(
                f"| `{name}` | {d.flavour} `{d.match}*` | {d.describe().replace('|', '/')} | {d.confidence} | "
                f"{_cite(d.source)} | {_cite(d.since_source)} |"
            )
    return "\n".join(lines) + "\n"


def readme_with_table(text: str, table: str) -> str:
    """``text`` with the part between the table markers replaced by ``table``."""
    head, sep, rest = text.partition(TABLE_START)
    if not sep or TABLE_END not in rest:
        raise ValueError("kernel_db/README.md lacks the netns table markers")
    return head + TABLE_START + "\n" + table + TABLE_END + rest.split(TABLE_END, 1)[1]


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    readme = Path(__file__).resolve().parents[2] / "kernel_db" / "README.md"
    if sys.argv[1:] == ["--write"]:
        readme.write_text(readme_with_table(readme.read_text(), inheritance_table()))
    else:
        sys.stdout.write(inheritance_table())
