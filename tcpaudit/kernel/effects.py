"""Keys whose write is not a plain setting (``kernel_db/effects.toml``).

Some sysctls are commands (``vm.drop_caches``, ``net.ipv4.route.flush``: every write acts and
nothing is stored), some are kept only so old files still load (``net.ipv4.tcp_low_latency``),
some are old names with a narrower scope (``net.nf_conntrack_max``), and some values turn on a
behaviour the kernel disabled by default (``net.netfilter.nf_conntrack_helper = 1``). Like the
rest of the knowledge base, every entry carries a source and a confidence, and a bad entry makes
:func:`load_effects_db` raise :class:`KernelDBError` naming the file and the entry.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._base import Confidence, Source, _load_named_entries, _parse_bound, _Ranged
from .release import KernelRelease

__all__ = ["EffectKind", "EffectRange", "EffectsDB", "KeyEffect", "load_effects_db"]

EFFECTS_FILE = "effects.toml"

EffectKind = Literal["trigger", "no_effect", "legacy_name", "deprecated_value"]

# Any /proc/sys tree, dotted: net.ipv4.route.flush, vm.drop_caches.
_NAME_RE = re.compile(r"^(?:abi|crypto|debug|dev|fs|kernel|net|sunrpc|user|vm)(?:\.[A-Za-z0-9_-]+)+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EffectRange(_Ranged):
    """The effect holds in ``[since, until)`` (``since_exact = false``: at least since, earlier unknown)."""


class RelatedSource(Source):
    """A further source for the same entry (same fields as ``source``)."""


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"sysctl name {value!r} must be fully qualified and dotted (vm.drop_caches)")
    return value


class KeyEffect(_Model):
    name: str
    kind: EffectKind
    summary: str = Field(min_length=20, description="what a write does, or why it does nothing; one clause")
    impact: str | None = None
    remediation: str | None = None
    values: list[str] = Field(default_factory=list)
    fix_value: str | None = Field(None, description="deprecated_value: the value to write instead")
    canonical: str | None = None
    notes: str | None = None
    confidence: Confidence
    source: Source
    related: list[RelatedSource] = Field(default_factory=list)
    applies: list[EffectRange] = Field(default_factory=list)

    @field_validator("name", "canonical")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return _check_name(value) if value is not None else None

    @model_validator(mode="after")
    def _kind_fields(self) -> KeyEffect:
        if self.kind == "legacy_name" and not self.canonical:
            raise ValueError("a legacy_name entry needs `canonical`, the name to use instead")
        if self.kind != "legacy_name" and self.canonical:
            raise ValueError("`canonical` belongs to legacy_name entries only")
        if self.kind == "deprecated_value" and not self.values:
            raise ValueError("a deprecated_value entry needs `values`, the values that turn the behaviour on")
        if self.fix_value is not None and (self.kind != "deprecated_value" or self.fix_value in self.values):
            raise ValueError("`fix_value` belongs to deprecated_value entries and must not be one of `values`")
        if self.kind in ("no_effect", "legacy_name") and self.values:
            raise ValueError(f"`values` has no meaning for a {self.kind} entry")
        if any(v != v.strip() or not v for v in self.values):
            raise ValueError("`values` must be non-empty strings without surrounding blanks")
        return self

    def applies_in(self, release: KernelRelease | None) -> bool | None:
        """True/False when the table knows whether the effect holds on ``release``; None when it cannot tell."""
        if not self.applies:
            return True
        if release is None:
            return None
        if any(r.contains(release) for r in self.applies):
            return True
        earliest = min(self.applies, key=lambda r: _parse_bound(r.since))
        if release < _parse_bound(earliest.since):
            return False if earliest.since_exact else None
        return False  # after every range ended

    def range_for(self, release: KernelRelease | None) -> EffectRange | None:
        """The range that made the effect hold on ``release`` (None when the entry has no ranges)."""
        if release is None:
            return None
        return next((r for r in self.applies if r.contains(release)), None)

    def acts_on(self, value: str) -> bool:
        """Does writing ``value`` trigger the action / turn the behaviour on?"""
        return not self.values or value.strip() in self.values


class EffectsDB(_Model):
    effects: dict[str, KeyEffect]

    def lookup(self, name: str) -> KeyEffect | None:
        return self.effects.get(name)


def _load(path: Path | None) -> EffectsDB:
    return EffectsDB(effects=_load_named_entries(path, EFFECTS_FILE, KeyEffect))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> EffectsDB:
    return _load(Path(path) if path is not None else None)


def load_effects_db(path: Path | None = None) -> EffectsDB:
    """Load and validate ``effects.toml`` (the packaged one when ``path`` is None); cached, immutable."""
    return _load_cached(str(Path(path).resolve()) if path is not None else None)
