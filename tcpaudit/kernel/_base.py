"""Base types of the kernel knowledge base, shared by db, effects, kubernetes and netns.

Sources, version ranges, the TOML reader and the entry builder live here, below every module that loads a
kernel_db/*.toml file, so that those modules import down and never each other in a circle.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .release import KernelRelease, KernelReleaseError, parse_release

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Confidence = Literal["verified", "high", "low"]

_HEX_RE = re.compile(r"^[0-9a-f]{12,40}$")
_TAG_RE = re.compile(r"^v\d+\.\d+(?:\.\d+)?(?:-rc\d+)?$")


class KernelDBError(Exception):
    """The knowledge base is missing or invalid; the message names file and entry."""


# ---------------------------------------------------------------------------
# version helpers


@functools.lru_cache(maxsize=4096)
def _parse_bound(text: str) -> KernelRelease:
    # Memoised: the bounds are a small fixed set of strings from the knowledge base and KernelRelease is
    # frozen, but every lookup (_pick, _presence, per rule, per lint unit) used to re-parse them -
    # ~50,000 parses for a 400-file lint (docs/benchmarks.md). Errors are not cached; they re-raise.
    release = parse_release(text)
    if release.build is not None:
        raise ValueError(f"version bound {text!r} must be an upstream version like '5.4'")
    return release


def _in_range(release: KernelRelease, since: str | None, until: str | None) -> bool:
    if since is not None and release < _parse_bound(since):
        return False
    return until is None or release < _parse_bound(until)


def _check_bounds(since: str | None, until: str | None) -> None:
    lo = _parse_bound(since) if since is not None else None
    hi = _parse_bound(until) if until is not None else None
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"since {since!r} must be before until {until!r}")


def normalize_sysctl_name(name: str) -> str:
    """``net/ipv4/tcp_sack``, ``/proc/sys/net/ipv4/tcp_sack`` -> ``net.ipv4.tcp_sack``."""
    text = name.strip()
    for prefix in ("/proc/sys/", "proc/sys/"):
        text = text.removeprefix(prefix)
    return text.strip("/").replace("/", ".")


# ---------------------------------------------------------------------------
# models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """Where a fact comes from.  Needs a commit, a file with a tag, or a URL."""

    commit: str | None = None
    subject: str | None = None
    tag: str | None = None
    file: str | None = None
    url: str | None = None
    note: str | None = None

    @field_validator("commit")
    @classmethod
    def _commit_hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX_RE.match(value):
            raise ValueError(f"commit {value!r} must be 12-40 lower-case hex digits")
        return value

    @field_validator("tag")
    @classmethod
    def _tag_form(cls, value: str | None) -> str | None:
        if value is not None and not _TAG_RE.match(value):
            raise ValueError(f"tag {value!r} must look like v5.4, v6.1.9 or v6.2-rc7")
        return value

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"url {value!r} must be http(s)")
        return value

    @model_validator(mode="after")
    def _has_locator(self) -> Source:
        if not (self.commit or (self.file and self.tag) or self.url):
            raise ValueError("a source needs a commit, a file with a tag, or a url")
        return self

    def as_dict(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class _Ranged(_Model):
    since: str
    until: str | None = None
    since_exact: bool = True
    # since_exact = false: `since` is only the era the fact is believed to start in; `verified` is the first
    # release it was actually seen on (`verified_by` says where). Between the two the table answers unknown.
    verified: str | None = None
    verified_by: str | None = None
    confidence: Confidence
    source: Source
    note: str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> _Ranged:
        _check_bounds(self.since, self.until)
        if self.verified is not None:
            if self.since_exact:
                raise ValueError("verified is only for since_exact = false (an exact since is verified)")
            if _parse_bound(self.verified) < _parse_bound(self.since):
                raise ValueError(f"verified {self.verified!r} is before since {self.since!r}")
            if not self.verified_by:
                raise ValueError("verified needs verified_by (where the fact was seen on that release)")
        return self

    def contains(self, release: KernelRelease) -> bool:
        return _in_range(release, self.since, self.until)

    def vouches_for(self, release: KernelRelease) -> bool:
        """False for a release the range contains only by an inexact `since`, before the first verified one."""
        if self.since_exact:
            return True
        return self.verified is not None and not release < _parse_bound(self.verified)


# ---------------------------------------------------------------------------
# loading


def _read_toml(path: Path | None, name: str) -> dict[str, Any]:
    try:
        if path is None:
            data = resources.files("tcpaudit.kernel_db").joinpath(name).read_bytes()
        else:
            data = (path / name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        raise KernelDBError(f"{name}: cannot read kernel knowledge base file ({exc})") from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KernelDBError(f"{name}: invalid TOML: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ())) or "entry"
    from ..validation import message as _message

    message = _message(err)
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def _build(model: type[BaseModel], file: str, key: str, body: Any, **extra: Any) -> Any:
    if not isinstance(body, dict):
        raise KernelDBError(f"{file}: entry {key!r}: expected a table")
    data = dict(body)
    for field, value in extra.items():
        if field in data and data[field] != value:
            raise KernelDBError(f"{file}: entry {key!r}: {field} {data[field]!r} does not match the key")
        data[field] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise KernelDBError(f"{file}: entry {key!r}: {_first_error(exc)}") from None
    except (ValueError, KernelReleaseError) as exc:
        raise KernelDBError(f"{file}: entry {key!r}: {exc}") from None


def _load_named_entries(path: Path | None, file: str, model: type[BaseModel]) -> dict[str, Any]:
    """A knowledge-base file whose top-level tables are entries named by their key (effects.toml, netns.toml):
    each validated as `model` with `name` = the key; an empty file is an error."""
    raw = _read_toml(path, file)
    if not raw:
        raise KernelDBError(f"{file}: no entries")
    return {key: _build(model, file, key, body, name=key) for key, body in raw.items()}
