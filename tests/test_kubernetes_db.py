"""The shipped table of the kubelet's safe sysctls (kernel_db/kubernetes.toml): validation and queries."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from tcpaudit.kernel.db import KernelDBError
from tcpaudit.kernel.kubernetes import KubeletSafeSysctls, KubernetesVersionError, load_kubernetes_db, parse_k8s_version
from tcpaudit.kernel.release import parse_release

# What the sources cited in the file say (release each sysctl joined the safe set, node kernel it needs).
EXPECTED = {
    "kernel.shm_rmid_forced": (None, None),
    "net.ipv4.ip_local_port_range": (None, None),
    "net.ipv4.tcp_syncookies": (None, None),
    "net.ipv4.ping_group_range": ("1.18", None),
    "net.ipv4.ip_unprivileged_port_start": ("1.22", None),
    "net.ipv4.ip_local_reserved_ports": ("1.27", "3.16"),
    "net.ipv4.tcp_keepalive_time": ("1.29", "4.5"),
    "net.ipv4.tcp_fin_timeout": ("1.29", "4.6"),
    "net.ipv4.tcp_keepalive_intvl": ("1.29", "4.5"),
    "net.ipv4.tcp_keepalive_probes": ("1.29", "4.5"),
    "net.ipv4.tcp_rmem": ("1.32", "4.15"),
    "net.ipv4.tcp_wmem": ("1.32", "4.15"),
    "net.ipv4.tcp_slow_start_after_idle": ("1.37", "4.15"),
    "net.ipv4.tcp_notsent_lowat": ("1.37", "4.6"),
}


@pytest.fixture(scope="module")
def db() -> KubeletSafeSysctls:
    return load_kubernetes_db()


def _copy(tmp_path: Path, text: str | None = None) -> Path:
    src = resources.files("tcpaudit.kernel_db").joinpath("kubernetes.toml").read_text()
    (tmp_path / "kubernetes.toml").write_text(src if text is None else text)
    return tmp_path


def test_shipped_table_validates_and_matches_its_sources(db):
    assert {k: (e.since, e.kernel) for k, e in db.safe.items()} == EXPECTED
    assert load_kubernetes_db() is db  # cached
    assert parse_k8s_version(db.default_version) >= (1, 32)
    assert db.newest_known == "1.37"


def test_every_entry_has_a_source_and_confidence(db):
    for entry in db.safe.values():
        assert entry.confidence in {"verified", "high", "low"}
        assert entry.source.url or entry.source.commit or (entry.source.file and entry.source.tag)
        assert entry.source.note, f"{entry.name}: say what the source states"
    assert "low" in db.default_version_note or "confidence" in db.default_version_note


def test_the_file_ships_in_the_package():
    assert resources.files("tcpaudit.kernel_db").joinpath("kubernetes.toml").is_file()


def test_safe_set_by_release_and_kernel(db):
    keepalive = db.lookup("net.ipv4.tcp_keepalive_time")
    assert keepalive is not None
    assert not keepalive.safe_in((1, 28)) and keepalive.safe_in((1, 29)) and keepalive.safe_in((2, 0))
    assert keepalive.kernel_too_old(parse_release("3.10.0-1160.el7.x86_64"))
    assert not keepalive.kernel_too_old(parse_release("4.5.0")) and not keepalive.kernel_too_old(None)
    assert db.lookup("net/ipv4/ping_group_range") is db.lookup("net.ipv4.ping_group_range")
    assert db.lookup("net.core.somaxconn") is None  # never safe: needs --allowed-unsafe-sysctls
    always = db.lookup("net.ipv4.tcp_syncookies")
    assert always is not None and always.safe_in((1, 0))


@pytest.mark.parametrize("text,expected", [("1.29", (1, 29)), ("v1.29.3", (1, 29)), (" 1.4 ", (1, 4))])
def test_parse_k8s_version(text, expected):
    assert parse_k8s_version(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1.29-eks", "latest", "1.29.3.4", "v1.x", "1." + "9" * 50])
def test_parse_k8s_version_rejects(text):
    with pytest.raises(KubernetesVersionError, match="not a Kubernetes release"):
        parse_k8s_version(text)


@pytest.mark.parametrize(
    "bad,message",
    [
        (
            ('source.url = "https://github.com/kubernetes/kubernetes/pull/118846"\n', ""),
            r"kubernetes\.toml: entry 'net\.ipv4\.tcp_keepalive_time': source",
        ),
        (
            (
                'since = "1.29"\nkernel = "4.5"\nconfidence = "verified"\nsource.url = '
                '"https://github.com/kubernetes/kubernetes/pull/118846"',
                'since = "v1.29"\nkernel = "4.5"\n'
                'confidence = "verified"\nsource.url = "https://github.com/kubernetes/kubernetes/pull/118846"',
            ),
            r"'net\.ipv4\.tcp_keepalive_time'.*MAJOR\.MINOR",
        ),
        (
            (
                'kernel = "4.5"\nconfidence = "verified"\nsource.url = "https://github.com/kubernetes/kubernetes/pull/118846"',
                'kernel = "4.5-generic"\nconfidence = "verified"\nsource.url = '
                '"https://github.com/kubernetes/kubernetes/pull/118846"',
            ),
            r"upstream version",
        ),
        (('default_version = "1.36"', 'default_version = "latest"'), r"entry 'meta'.*MAJOR\.MINOR"),
        (('[safe."kernel.shm_rmid_forced"]', '[safe."kernel"]'), r"fully qualified"),
    ],
)
def test_bad_entries_fail_validation_naming_file_and_entry(tmp_path, bad, message):
    src = resources.files("tcpaudit.kernel_db").joinpath("kubernetes.toml").read_text()
    old, new = bad
    assert src.count(old) >= 1, old
    path = _copy(tmp_path, src.replace(old, new, 1))
    with pytest.raises(KernelDBError, match=message):
        load_kubernetes_db(path)


def test_missing_tables_and_invalid_toml(tmp_path):
    no_meta = '[safe."net.ipv4.tcp_syncookies"]\nconfidence = "verified"\nsource.url = "https://x"\n'
    for sub, text, message in [("a", no_meta, r"\[meta\]"), ("b", "[meta\n", "invalid TOML")]:
        (tmp_path / sub).mkdir()
        with pytest.raises(KernelDBError, match=message):
            load_kubernetes_db(_copy(tmp_path / sub, text))
    with pytest.raises(KernelDBError, match="cannot read"):
        load_kubernetes_db(tmp_path / "nowhere")


def test_entries_name_their_pull_request_or_file_at_a_commit(db):
    for entry in db.safe.values():
        url = entry.source.url or ""
        assert re.match(r"^https://github\.com/kubernetes/(kubernetes/pull/\d+|website/blob/[0-9a-f]{40}/)", url), url
