"""The kubelet's default safe sysctl set by Kubernetes release (``kernel_db/kubernetes.toml``).

A pod's ``spec.securityContext.sysctls`` are admitted by the kubelet only when each one is in
its safe set (or allowed with ``--allowed-unsafe-sysctls``); the set grew over releases, and
some entries count as safe only on kernels where the sysctl is per network namespace. Like
the kernel knowledge base, every entry carries a source and a confidence, and a bad entry
makes :func:`load_kubernetes_db` raise :class:`KernelDBError` naming the file and the entry.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._base import Confidence, KernelDBError, Source, _build, _read_toml
from .release import KernelRelease, KernelReleaseError, parse_release

__all__ = [
    "KubeletSafeSysctls",
    "KubernetesVersionError",
    "SafeSysctl",
    "load_kubernetes_db",
    "parse_k8s_version",
]

KUBERNETES_FILE = "kubernetes.toml"

# `1.29`, `v1.29`, `1.29.3`: what `kubectl version` and release notes print, without build suffixes.
# tcpaudit/context.py accepts the same grammar for [context] kubernetes_version.
VERSION_PATTERN = r"^v?\d{1,3}\.\d{1,3}(?:\.\d{1,5})?$"
_VERSION_RE = re.compile(VERSION_PATTERN)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")


class KubernetesVersionError(ValueError):
    """Not a Kubernetes release like 1.29 or v1.29.3; the message is one line."""


def parse_k8s_version(text: str) -> tuple[int, int]:
    """``"v1.29.3"`` -> ``(1, 29)``: the minor release is what decides the kubelet's safe set."""
    if not isinstance(text, str) or not _VERSION_RE.match(text.strip()):
        shown = repr(text[:40]) if isinstance(text, str) else f"<{type(text).__name__}>"
        raise KubernetesVersionError(f"{shown} is not a Kubernetes release like 1.29 or v1.29.3")
    major, minor = text.strip().lstrip("v").split(".")[:2]
    return int(major), int(minor)


def _minor_form(value: str | None) -> str | None:
    if value is not None:
        if not re.match(r"^\d+\.\d+$", value):
            raise ValueError(f"Kubernetes release {value!r} must be MAJOR.MINOR like '1.29'")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SafeSysctl(_Model):
    name: str
    since: str | None = Field(None, description="first Kubernetes minor with it in the safe set; None = always")
    kernel: str | None = Field(None, description="counted as safe only on nodes with at least this kernel")
    confidence: Confidence
    source: Source
    note: str | None = None

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"sysctl name {value!r} must be fully qualified and dotted (net.ipv4.tcp_syncookies)")
        return value

    @field_validator("since")
    @classmethod
    def _since_form(cls, value: str | None) -> str | None:
        return _minor_form(value)

    @field_validator("kernel")
    @classmethod
    def _kernel_form(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                release = parse_release(value)
            except KernelReleaseError as exc:
                raise ValueError(str(exc)) from None
            if release.build is not None:
                raise ValueError(f"kernel bound {value!r} must be an upstream version like '4.5'")
        return value

    def safe_in(self, version: tuple[int, int]) -> bool:
        """In the kubelet's safe set of this Kubernetes release (before any kernel condition)."""
        return self.since is None or version >= parse_k8s_version(self.since)

    def kernel_too_old(self, release: KernelRelease | None) -> bool:
        """True when the node kernel is older than the one the kubelet requires for this entry."""
        return self.kernel is not None and release is not None and release < parse_release(self.kernel)


class Namespaced(_Model):
    """The kubelet's NamespacedBy(): which sysctls --allowed-unsafe-sysctls may allow at all."""

    ipc: list[str]
    ipc_prefixes: list[str]
    net_prefixes: list[str]
    confidence: Confidence
    source: Source

    def namespace_of(self, name: str) -> str | None:
        """'ipc', 'net', or None: not known to be namespaced (the kubelet can never allow it)."""
        name = name.replace("/", ".")
        if name in self.ipc or any(name.startswith(p) for p in self.ipc_prefixes):
            return "ipc"
        if any(name.startswith(p) for p in self.net_prefixes):
            return "net"
        return None


_U32_GID_MAX = 4294967294  # (gid_t)-1 is never a valid group id
_INT_RE = re.compile(r"^-?\d+$")


class Accepts(_Model):
    """What the kernel accepts for one pod-settable sysctl (kernel_db/kubernetes.toml [accepts])."""

    name: str
    shape: Literal["u8", "minmax", "gid_range", "port_range", "port_list", "uint"]
    min: int | None = None
    max: int | None = None
    kernel: str | None = Field(None, description="the bound holds from this kernel on (u8 keys: 5.13); None = always")
    confidence: Confidence
    source: Source

    def applies_to(self, release: KernelRelease | None) -> bool:
        """The bound holds on `release` (an unknown kernel counts as current)."""
        return self.kernel is None or release is None or not release < parse_release(self.kernel)

    def rejects(self, value: str) -> str | None:
        """Why the kernel refuses `value` with EINVAL, or None if it accepts it (cross-key checks aside)."""
        fields = value.split()
        if self.shape == "port_list":
            return self._port_list(value.strip())
        if not fields or not all(_INT_RE.match(f) for f in fields):
            return f"{value.strip()[:40]!r} is not a list of integers"
        nums = [int(f) for f in fields]
        if self.shape == "u8":
            return None if 0 <= nums[0] <= 255 else f"{nums[0]} is outside 0..255 (an unsigned 8-bit value)"
        if self.shape == "uint":
            return None if 0 <= nums[0] <= 2**32 - 1 else f"{nums[0]} is outside 0..4294967295"
        if self.shape == "minmax":
            lo, hi = self.min if self.min is not None else -(2**31), self.max if self.max is not None else 2**31 - 1
            return None if lo <= nums[0] <= hi else f"{nums[0]} is outside {lo}..{hi}"
        if self.shape == "gid_range":
            bad = [n for n in nums[:2] if not 0 <= n <= _U32_GID_MAX]
            return f"group id {bad[0]} is not valid (0..{_U32_GID_MAX})" if bad else None
        # port_range
        lo, hi = self.min or 1, self.max or 65535
        bad = [n for n in nums[:2] if not lo <= n <= hi]
        if bad:
            return f"port {bad[0]} is outside {lo}..{hi}"
        if len(nums) >= 2 and nums[1] < nums[0]:
            return f"the low end {nums[0]} is above the high end {nums[1]}"
        return None

    @staticmethod
    def _port_list(value: str) -> str | None:
        if not value:
            return None
        for part in value.split(","):
            ends = part.strip().split("-")
            if len(ends) > 2 or not all(e.isdigit() for e in ends):
                return f"{part.strip()[:20]!r} is not a port or a range a-b (the list is comma-separated)"
            if any(int(e) > 65535 for e in ends):
                return f"{part.strip()[:20]!r} is outside 0..65535"
        return None


class KubeletSafeSysctls(_Model):
    default_version: str
    default_version_note: str = Field(min_length=20)
    safe: dict[str, SafeSysctl]
    namespaced: Namespaced | None = None
    accepts: dict[str, Accepts] = Field(default_factory=dict)

    @field_validator("default_version")
    @classmethod
    def _default_form(cls, value: str) -> str:
        return _minor_form(value) or value

    def lookup(self, name: str) -> SafeSysctl | None:
        """The entry for a dotted sysctl name (the kubelet also accepts `/` as the separator since 1.23)."""
        return self.safe.get(name.replace("/", "."))

    @property
    def newest_known(self) -> str:
        """The newest Kubernetes release whose safe set this table knows."""
        versions = [e.since for e in self.safe.values() if e.since] + [self.default_version]
        return max(versions, key=parse_k8s_version)


def _load(path: Path | None) -> KubeletSafeSysctls:
    raw = _read_toml(path, KUBERNETES_FILE)
    meta = raw.get("meta")
    if not isinstance(meta, dict):
        raise KernelDBError(f"{KUBERNETES_FILE}: a [meta] table with default_version is required")
    table = raw.get("safe")
    if not isinstance(table, dict) or not table:
        raise KernelDBError(f'{KUBERNETES_FILE}: a [safe."NAME"] table per safe sysctl is required')
    unknown = set(raw) - {"meta", "safe", "namespaced", "accepts"}
    if unknown:
        raise KernelDBError(f"{KUBERNETES_FILE}: unknown top-level table(s) {', '.join(sorted(unknown))}")
    safe = {key: _build(SafeSysctl, KUBERNETES_FILE, key, body, name=key) for key, body in table.items()}
    extra: dict = {}
    if isinstance(raw.get("namespaced"), dict):
        extra["namespaced"] = _build(Namespaced, KUBERNETES_FILE, "namespaced", raw["namespaced"])
    accepts = raw.get("accepts") or {}
    extra["accepts"] = {key: _build(Accepts, KUBERNETES_FILE, key, body, name=key) for key, body in accepts.items()}
    return _build(KubeletSafeSysctls, KUBERNETES_FILE, "meta", {**meta, "safe": safe, **extra})


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> KubeletSafeSysctls:
    return _load(Path(path) if path is not None else None)


def load_kubernetes_db(path: Path | None = None) -> KubeletSafeSysctls:
    """Load and validate ``kubernetes.toml`` (the packaged one when ``path`` is None); cached, immutable."""
    return _load_cached(str(Path(path).resolve()) if path is not None else None)
