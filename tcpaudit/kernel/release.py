"""Parse Linux kernel release strings (``uname -r``) into comparable values.

Distribution kernels put their own build information after the upstream
version: ``5.14.21-150400.24.21-default`` (SUSE), ``5.4.0-137-generic``
(Ubuntu), ``3.10.0-1160.83.1.el7.x86_64`` (RHEL family), ``6.1.0-18-amd64``
(Debian), ``6.1.79-99.167.amzn2023.x86_64`` (Amazon Linux) ...  Generic
version parsers (PEP 440 via ``packaging``) misread most of these -- they treat
``-137`` as a post release or reject the string outright -- so this module has
its own small, strict grammar:

    [v]MAJOR.MINOR[.PATCH][-rcN][<separator><distro build>][+]

A trailing ``+`` is what CONFIG_LOCALVERSION_AUTO appends for a tree with
commits past its tag (or uncommitted changes): ``6.8.0-rc1+``, ``4.19.0+``.
The upstream base is still the version before it, so it orders with it.

Anything that does not fit raises :class:`KernelReleaseError` with a one-line
message; the parser never guesses.

Note on ``version``: it is the upstream base the distribution *declares*.
Ubuntu and Debian keep the patch level at 0 (``5.4.0-137-generic`` is based on
some 5.4.y stable release), RHEL/SUSE backport heavily, so ``version`` alone
does not tell which stable fixes a distribution kernel carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "KernelRelease",
    "KernelReleaseError",
    "parse_host_release",
    "parse_release",
    "parse_version",
    "upstream_point",
]

MAX_COMPONENT = 9999
MAX_LENGTH = 200

_SHOW_MAX = 60


class KernelReleaseError(ValueError):
    """Raised for a string that is not a kernel release; the message is one line."""


def _show(text: object) -> str:
    """A one-line, bounded rendering of untrusted input for error messages."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    shown = repr(text[:_SHOW_MAX])
    if len(text) > _SHOW_MAX:
        shown += f"... ({len(text)} chars)"
    return shown


_VERSION_RE = re.compile(r"^[vV]?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?")
_RC_RE = re.compile(r"^-rc(?P<rc>\d+)", re.IGNORECASE)
_BUILD_OK_RE = re.compile(r"^[A-Za-z0-9._+~-]*$")

# Flavour detection on the build suffix (lower-cased).
_RHEL_RE = re.compile(r"(?:^|[.\-_])el(?P<major>\d+)(?:[_.\-]|uek|$)")
_FEDORA_RE = re.compile(r"(?:^|[.\-])fc(?P<major>\d+)(?:[.\-_]|$)")
_AMZN_RE = re.compile(r"(?:^|[.\-])amzn(?P<gen>2023|2|1)(?:[.\-_]|$)")
_UBUNTU_FLAVOURS = frozenset(
    {
        "generic",
        "lowlatency",
        "aws",
        "azure",
        "gcp",
        "gke",
        "gkeop",
        "oracle",
        "kvm",
        "raspi",
        "raspi2",
        "ibm",
        "nvidia",
        "intel-iotg",
        "oem",
        "realtime",
        "virtual",
        "server",
        "generic-pae",
        "generic-lpae",
        "generic-64k",
        "lowlatency-64k",
        "aws-fips",
        "azure-fips",
        "gcp-fips",
        "fips",
        "bluefield",
        "xilinx-zynqmp",
        "snapdragon",
        "powerpc64-smp",
        "powerpc-smp",
    }
)
_DEBIAN_FLAVOURS = frozenset(
    {
        "amd64",
        "arm64",
        "686",
        "686-pae",
        "armmp",
        "armmp-lpae",
        "marvell",
        "rpi",
        "powerpc64le",
        "s390x",
        "mips64r2el",
        "loongson-3",
        "octeon",
        "4kc-malta",
        "5kc-malta",
        "rt-amd64",
        "rt-arm64",
        "rt-686-pae",
        "cloud-amd64",
        "cloud-arm64",
        "686-pae-unsigned",
        "amd64-unsigned",
        "arm64-16k",
    }
)
_SUSE_FLAVOURS = frozenset(
    {
        "default",
        "azure",
        "rt",
        "64kb",
        "preempt",
        "kvmsmall",
        "vanilla",
        "pae",
        "xen",
        "debug",
        "zfcpdump",
        "lpae",
        "rt_debug",
    }
)
# Ubuntu: "<abi>-<flavour>", abi is a single integer.
_UBUNTU_BUILD_RE = re.compile(r"^(?P<abi>\d+)-(?P<flavour>[a-z0-9][a-z0-9-]*)$")
# Debian: "<abi>-<arch flavour>".
_DEBIAN_BUILD_RE = re.compile(r"^(?P<abi>\d+)-(?P<flavour>[a-z0-9][a-z0-9-]*)$")
# SUSE: "<dotted build numbers or lpNNN.x>-<flavour>", e.g. 150400.24.21-default.
_SUSE_BUILD_RE = re.compile(r"^(?P<build>(?:lp\d+\.)?\d+(?:\.\d+)*(?:\.g[0-9a-f]+)?)-(?P<flavour>[a-z0-9_]+)$")


def _component(text: str, what: str, raw: str) -> int:
    if len(text) > 5 or int(text) > MAX_COMPONENT:
        raise KernelReleaseError(
            f"not a kernel release: {_show(raw)} ({what} {text[:8]} is larger than {MAX_COMPONENT})"
        )
    return int(text)


def _check_text(text: object, kind: str) -> str:
    if not isinstance(text, str):
        raise KernelReleaseError(f"not a kernel {kind}: expected a string, got {_show(text)}")
    stripped = text.strip()
    if not stripped:
        raise KernelReleaseError(f"not a kernel {kind}: empty string")
    if len(stripped) > MAX_LENGTH:
        raise KernelReleaseError(f"not a kernel {kind}: {_show(text)} is longer than {MAX_LENGTH} characters")
    if any(not ch.isprintable() or ch.isspace() for ch in stripped):
        raise KernelReleaseError(f"not a kernel {kind}: {_show(text)} contains whitespace or control characters")
    if not stripped.isascii():
        raise KernelReleaseError(f"not a kernel {kind}: {_show(text)} contains non-ASCII characters")
    return stripped


_BSD_BUILD_RE = re.compile(r"^(?:RELEASE|STABLE|CURRENT|PRERELEASE|BETA\d*|RC\d+|ALPHA\d*)(?:-p\d+)?$")


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse a plain upstream version: ``"4.12"``, ``"4.12.0"``, ``"v6.2"``.

    Returns ``(major, minor, patch)``; raises :class:`KernelReleaseError` for
    anything else (including release strings with a build suffix).
    """
    stripped = _check_text(text, "version")
    match = _VERSION_RE.match(stripped)
    if not match or match.end() != len(stripped):
        raise KernelReleaseError(f"not a kernel version: {_show(text)} (expected X.Y or X.Y.Z, e.g. 4.12 or 5.14.21)")
    major = _component(match["major"], "major", text)
    minor = _component(match["minor"], "minor", text)
    patch = _component(match["patch"], "patch", text) if match["patch"] is not None else 0
    return (major, minor, patch)


def _detect_flavour(build: str) -> tuple[str | None, int | None]:
    low = build.lower()
    m = _AMZN_RE.search(low)
    if m:
        return f"amzn{m['gen']}", None
    m = _RHEL_RE.search(low)
    if m:
        return "rhel", int(m["major"][:4])
    m = _FEDORA_RE.search(low)
    if m:
        return "fedora", int(m["major"][:4])
    m = _DEBIAN_BUILD_RE.match(low)
    if m and m["flavour"] in _DEBIAN_FLAVOURS:
        return "debian", None
    m = _SUSE_BUILD_RE.match(low)
    # "default" is only used by SUSE; a single-integer ABI with another
    # flavour word (e.g. "1057-azure") is Ubuntu's scheme.
    if (
        m
        and m["flavour"] in _SUSE_FLAVOURS
        and ("." in m["build"] or m["flavour"] == "default" or m["build"].startswith("lp"))
    ):
        return "suse", None
    m = _UBUNTU_BUILD_RE.match(low)
    if m and m["flavour"] in _UBUNTU_FLAVOURS:
        return "ubuntu", None
    return None, None


@dataclass(frozen=True, order=False)
class KernelRelease:
    """A parsed kernel release; orders by upstream version (``-rcN`` before final)."""

    raw: str
    version: tuple[int, int, int]
    prerelease: str | None = None
    flavour: str | None = None
    distro_major: int | None = None
    build: str | None = None
    # Where `version` came from when it is the distribution's upstream stable point release rather than the
    # declared base of `raw` ("uname -v: Debian 6.1.76-1"); None: parsed from `raw` alone.
    point_source: str | None = None

    @property
    def upstream(self) -> str:
        base = ".".join(str(part) for part in self.version)
        return f"{base}-{self.prerelease}" if self.prerelease else base

    @property
    def series(self) -> str:
        """The ``major.minor`` series, e.g. ``"6.1"``."""
        return f"{self.version[0]}.{self.version[1]}"

    # -- ordering -------------------------------------------------------
    def _key(self) -> tuple[tuple[int, int, int], int, int]:
        if self.prerelease is None:
            return (self.version, 1, 0)
        digits = re.sub(r"\D", "", self.prerelease) or "0"
        return (self.version, 0, int(digits[:6]))

    @staticmethod
    def _other_key(other: object) -> tuple[tuple[int, int, int], int, int] | None:
        if isinstance(other, KernelRelease):
            return other._key()
        if (
            isinstance(other, tuple)
            and 2 <= len(other) <= 3
            and all(isinstance(part, int) and not isinstance(part, bool) for part in other)
        ):
            padded = tuple(other) + (0,) * (3 - len(other))
            return (padded, 1, 0)
        return None

    def __lt__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self._key() < key

    def __le__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self._key() <= key

    def __gt__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self._key() > key

    def __ge__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self._key() >= key

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KernelRelease):
            return (self.raw, self.version, self.prerelease, self.flavour, self.build) == (
                other.raw,
                other.version,
                other.prerelease,
                other.flavour,
                other.build,
            )
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self._key() == key

    def __hash__(self) -> int:
        return hash((self.raw, self.version, self.prerelease, self.flavour, self.build))

    def same_version(self, other: KernelRelease | tuple[int, ...]) -> bool:
        """True if both have the same upstream version and prerelease tag."""
        key = self._other_key(other)
        return key is not None and self._key() == key

    def at_least(self, other: str | tuple[int, ...] | KernelRelease) -> bool:
        """``self >= other``; ``other`` may be ``"4.12"``, ``"6.2.0-rc7"`` or a tuple."""
        if isinstance(other, str):
            target: KernelRelease | tuple[int, ...] = parse_release(other)
        else:
            target = other
        result = self.__ge__(target)
        if result is NotImplemented:
            raise TypeError(f"cannot compare a kernel release with {_show(other)}")
        return bool(result)

    def __str__(self) -> str:
        return self.raw


def parse_release(text: str) -> KernelRelease:
    """Parse ``uname -r`` output; raise :class:`KernelReleaseError` for garbage."""
    stripped = _check_text(text, "release")
    match = _VERSION_RE.match(stripped)
    if not match:
        raise KernelReleaseError(
            f"not a kernel release: {_show(text)} (expected X.Y[.Z][-build], e.g. 5.4.0-137-generic)"
        )
    major = _component(match["major"], "major", text)
    minor = _component(match["minor"], "minor", text)
    patch = _component(match["patch"], "patch", text) if match["patch"] is not None else 0
    rest = stripped[match.end() :]

    prerelease: str | None = None
    rc = _RC_RE.match(rest)
    if rc:
        rc_number = _component(rc["rc"], "rc number", text)
        prerelease = f"rc{rc_number}"
        rest = rest[rc.end() :]

    if rest == "+":
        # `4.19.0+`, `6.8.0-rc1+`: a development tree past the tag, not an empty build suffix
        rest = ""
    if rest and rest[0] not in "-.+_~":
        raise KernelReleaseError(
            f"not a kernel release: {_show(text)} (unexpected {_show(rest[:10])} after the version)"
        )
    if rest and rest[0] == "." and rest[1:2].isdigit() and match["patch"] is not None:
        # "1.2.3.4" -- a fourth numeric component is not a kernel release.
        raise KernelReleaseError(f"not a kernel release: {_show(text)} (too many numeric version components)")
    build = rest[1:] if rest else ""
    if not _BUILD_OK_RE.match(build):
        raise KernelReleaseError(f"not a kernel release: {_show(text)} (invalid characters in build suffix)")
    if rest and not build:
        raise KernelReleaseError(f"not a kernel release: {_show(text)} (empty build suffix)")

    if _BSD_BUILD_RE.match(build):
        # FreeBSD/NetBSD `uname -r` (14.0-RELEASE-p3, 13.2-STABLE): not a Linux kernel, so no Linux fact applies.
        raise KernelReleaseError(f"not a Linux kernel release: {_show(text)} (a BSD release name)")
    flavour, distro_major = _detect_flavour(build) if build else (None, None)
    return KernelRelease(
        raw=stripped,
        version=(major, minor, patch),
        prerelease=prerelease,
        flavour=flavour,
        distro_major=distro_major,
        build=build or None,
    )


# The upstream stable release a distribution build is made from, as the build itself says:
#   Debian, in `uname -v` (/proc/sys/kernel/version, also the tail of /proc/version):
#     "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "#1 SMP Debian 5.10.209-2 (2024-01-31)",
#     backports "Debian 6.1.69-1~bpo11+1"; Proxmox VE: "#1 SMP PREEMPT_DYNAMIC PMX 6.5.13-5 (...)".
#   Ubuntu, in /proc/version_signature: "Ubuntu 5.15.0-91.101-generic 5.15.131" (the last field is the
#     upstream stable version the Ubuntu kernel is rebased on).
# RHEL, SUSE, Amazon Linux do not state one (RHEL's `uname -v` is "#1 SMP Tue Jan 23 ..."), so their kernels
# stay judged as rebased: by the declared base, with backports unknown.
_DEBIAN_POINT_RE = re.compile(r"(?:^|\s)(?P<who>Debian|PMX) (?P<v>\d{1,4}\.\d{1,4}\.\d{1,5})(?=[-+~\s]|$)")
_UBUNTU_SIGNATURE_RE = re.compile(r"^Ubuntu\s+\S+\s+(?P<v>\d{1,4}\.\d{1,4}\.\d{1,5})\s*$")
# Ubuntu appends the signature to /proc/version too: "... #107-Ubuntu SMP ... 2024 (Ubuntu 5.15.0-97.107-generic
# 5.15.136)".
_UBUNTU_PROC_VERSION_RE = re.compile(r"\(Ubuntu\s+\S+\s+(?P<v>\d{1,4}\.\d{1,4}\.\d{1,5})\)\s*$")


def upstream_point(
    build_version: str | None = None, version_signature: str | None = None
) -> tuple[tuple[int, int, int], str] | None:
    """(upstream stable version, where it was read) from `uname -v` / /proc/version text or Ubuntu's
    /proc/version_signature; None when neither states one."""
    if version_signature:
        m = _UBUNTU_SIGNATURE_RE.match(version_signature.strip()[:MAX_LENGTH])
        if m:
            return parse_version(m["v"]), f"/proc/version_signature: {version_signature.strip()[:_SHOW_MAX]}"
    if build_version:
        text = build_version.strip()[: MAX_LENGTH * 3]
        m = _UBUNTU_PROC_VERSION_RE.search(text)
        if m:
            return parse_version(m["v"]), f"/proc/version: Ubuntu, upstream {m['v']}"
        m = _DEBIAN_POINT_RE.search(text)
        if m:
            return parse_version(m["v"]), f"uname -v: {m['who']} {m['v']}"
    return None


def parse_host_release(
    release: str, build_version: str | None = None, version_signature: str | None = None
) -> KernelRelease:
    """`parse_release(release)`, judged as the upstream stable point release the build states (Debian's
    `6.1.0-18-amd64` with `uname -v` "... Debian 6.1.76-1 ..." is 6.1.76), so that fixes in stable point
    releases count. The stated release must be of the same series and not older than the declared base;
    otherwise the declared base is kept."""
    parsed = parse_release(release)
    point = upstream_point(build_version, version_signature)
    if point is None or parsed.prerelease is not None:
        return parsed
    version, source = point
    if version[:2] != parsed.version[:2] or version < parsed.version:
        return parsed
    from dataclasses import replace

    return replace(parsed, version=version, point_source=source)
