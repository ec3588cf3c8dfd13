"""What the config parsers produce: assignments in the order they are applied, and problems.

Every parser (sysctl.conf, `sysctl -w` lists, tuned, Markdown, YAML/JSON manifests) turns a
file into one or more `ConfigUnit`s: a set of settings that land in one kernel (one host at
boot, one pod network namespace, one compose service). Rules see a unit through `ConfigFacts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..model import Location
from ..rules.base import Facts

GLOB_CHARS = frozenset("*?[")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Assignment:
    """One `key = value` as written. `value is None` is a systemd glob exclusion line (`-key`)."""

    key: str  # normalised: dotted, `/` inside a component (net.ipv4.conf.eth0/100.rp_filter)
    value: str | None
    location: Location
    raw_key: str = ""
    ignore_errors: bool = False  # `-` prefix (sysctl.d) or `sysctl -e`
    syntax: str = "sysctl.conf"  # how it was written: sysctl.conf, sysctl -w, tuned, yaml, kubernetes, ...
    note: str | None = None  # how the written value differs from what the author meant (shell splitting)

    @property
    def is_glob(self) -> bool:
        return _GLOB.search(self.key) is not None

    @property
    def templated(self) -> bool:
        """A template placeholder (Jinja, Helm, tuned variables): the real value is not known here."""
        return self.value is not None and ("{{" in self.value or "${" in self.value)

    @property
    def where(self) -> str:
        return f"{self.location.file}:{self.location.line}" if self.location.line else self.location.file


@dataclass(frozen=True)
class Problem:
    """A line or a placement that will never set anything (SYS004)."""

    kind: str  # syntax | placement
    message: str
    location: Location
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class InlineIgnore:
    """`# tcpaudit: ignore[RULE,...] reason` on the line of a key or the line before it."""

    rules: frozenset[str]
    reason: str
    location: Location  # the key's line it applies to
    directive: Location


@dataclass
class ConfigUnit:
    name: str
    syntax: str
    assignments: list[Assignment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignores: list[InlineIgnore] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kernel_hint: str | None = None  # kernel.osrelease found in a `sysctl -a` capture
    # Parts recognised as setting sysctls but not read ("not read: FORMAT ..."): the target is reported as
    # partial (exit code 3), never as "ok, no findings".
    gaps: list[str] = field(default_factory=list)
    # A pod spec's hostNetwork / hostIPC: "net" and/or "ipc" when the pod shares that namespace with the node.
    host_namespaces: tuple[str, ...] = ()


@dataclass
class ConfigFacts(Facts):
    """Facts for a config target, plus everything that was written (not only what takes effect).

    `configured` (from Facts) holds the effective value of each key: the last assignment the
    kernel accepts. `assignments` keeps every assignment in application order, so rules can see
    overridden lines, `-` prefixes and keys that do not exist on the target kernel.
    """

    assignments: list[Assignment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    host_namespaces: tuple[str, ...] = ()  # a pod with hostNetwork / hostIPC: ("net",), ("ipc",), both


def assignments_of(f: Facts) -> list[Assignment]:
    """Every assignment of a config target; a plain `Facts` only knows the effective ones."""
    if isinstance(f, ConfigFacts):
        return f.assignments
    return [Assignment(key=k, value=v, location=loc, raw_key=k) for k, (v, loc) in f.configured.items()]
