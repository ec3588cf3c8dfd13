"""`tcpaudit lint --k8s-version` and `[context] kubernetes_version` through the real CLI (SYS007)."""

from __future__ import annotations

import json
from pathlib import Path

from .cli import run

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  securityContext:
    sysctls:
      - {name: net.ipv4.tcp_keepalive_time, value: "600"}
  containers:
    - {name: app, image: centos}
"""


def _sys007(tmp_path: Path, *args: str, cwd: Path | None = None) -> list[dict]:
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD)
    p = run("lint", str(pod), "--format", "json", *args, cwd=cwd)
    assert p.returncode in (0, 1), p.stderr
    return [f for t in json.loads(p.stdout)["targets"] for f in t["findings"] if f["rule"] == "SYS007"]


def test_default_release_is_assumed_and_keepalive_is_safe(tmp_path: Path) -> None:
    assert _sys007(tmp_path) == []


def test_an_older_release_rejects_keepalive_and_says_so(tmp_path: Path) -> None:
    (f,) = _sys007(tmp_path, "--k8s-version", "v1.28.4")
    assert f["severity"] == "medium" and f["keys"] == ["net.ipv4.tcp_keepalive_time"]
    assert f["location"]["line"] == 7
    assert f["evidence"]["safe_since"] == "1.29" and f["evidence"]["kubernetes_version_source"] == "given"
    assert f["context"] == ["Kubernetes 1.28 (given: --k8s-version / [context] kubernetes_version)"]


def test_config_file_gives_the_release_and_the_flag_wins(tmp_path: Path) -> None:
    (tmp_path / ".tcpaudit.toml").write_text('[context]\nkubernetes_version = "1.27"\n')
    (f,) = _sys007(tmp_path, cwd=tmp_path)
    assert f["evidence"]["kubernetes"] == "1.27"
    assert _sys007(tmp_path, "--k8s-version", "1.29", cwd=tmp_path) == []


def test_bad_release_is_a_usage_error(tmp_path: Path) -> None:
    p = run("lint", str(tmp_path), "--k8s-version", "1.29-eks")
    assert p.returncode == 2 and "--k8s-version" in p.stderr and "not a Kubernetes release" in p.stderr
    (tmp_path / ".tcpaudit.toml").write_text('[context]\nkubernetes_version = "latest"\n')
    (tmp_path / "pod.yaml").write_text(POD)
    p = run("lint", "pod.yaml", cwd=tmp_path)
    assert p.returncode == 2 and "kubernetes_version" in p.stderr
