"""Issue 16, class 3: formats that set sysctls are read, or reported as "not read: FORMAT" - never "ok, no findings".

Salt states (salt/states/sysctl.py: `present(name, value, config=None)`, the state ID as the default name), Talos
machine configuration (`machine.sysctls`, the SysctlConfig document), pod sysctls outside net.*, and a `sysctl -a`
capture installed as a sysctl.d file. A gap makes the target partial: exit code 3 and a line in every format.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tcpaudit.lint import parse_text

from .cli import ROOT, run

SALT_ID = """\
net.ipv4.tcp_retries2:
  sysctl.present:
    - value: 3
vm.swappiness:
  sysctl.present:
    - value: 10
    - config: /etc/sysctl.d/99-salt.conf
"""
SALT_NAME = """\
set-retries:
  sysctl.present:
    - name: net.ipv4.tcp_retries2
    - value: 5
abort-on-overflow:
  sysctl:
    - present
    - name: net.ipv4.tcp_abort_on_overflow
    - value: 1
"""
SALT_JINJA = """\
{% for key, val in salt['pillar.get']('sysctl', {}).items() %}
{{ key }}:
  sysctl.present:
    - value: {{ val }}
{% endfor %}
"""
SALT_TEMPLATED_VALUE = """\
net.core.somaxconn:
  sysctl.present:
    - value: "{{ pillar['somaxconn'] }}"
"""
TALOS = """\
version: v1alpha1
machine:
  type: worker
  sysctls:
    net.ipv4.tcp_retries2: "3"
    net.core.somaxconn: "65535"
cluster:
  controlPlane:
    endpoint: https://192.0.2.10:6443
---
apiVersion: v1alpha1
kind: SysctlConfig
params:
  net.ipv4.tcp_abort_on_overflow: "1"
"""
POD_IPC_ONLY = """\
apiVersion: v1
kind: Pod
metadata: {name: ipc}
spec:
  securityContext:
    sysctls:
    - {name: kernel.msgmax, value: "65536"}
  containers: [{name: c, image: busybox}]
"""


def _settings(units) -> dict[str, tuple[str | None, int, str]]:  # type: ignore[no-untyped-def]
    return {a.key: (a.value, a.location.line, a.syntax) for u in units for a in u.assignments}


def test_salt_state_id_is_the_name() -> None:
    units = parse_text(SALT_ID, "sysctl.sls")
    assert _settings(units) == {
        "net.ipv4.tcp_retries2": ("3", 1, "salt sysctl.present"),
        "vm.swappiness": ("10", 4, "salt sysctl.present"),
    }
    assert not any(u.gaps for u in units)
    assert any("99-salt.conf" in n for u in units for n in u.notes)


def test_salt_name_value_and_short_forms() -> None:
    units = parse_text(SALT_NAME, "init.sls")
    s = _settings(units)
    assert s["net.ipv4.tcp_retries2"][:2] == ("5", 3)
    assert s["net.ipv4.tcp_abort_on_overflow"][:2] == ("1", 8)


def test_salt_templated_value_is_a_gap() -> None:
    units = parse_text(SALT_TEMPLATED_VALUE, "sysctl.sls")
    assert not _settings(units)
    gaps = [g for u in units for g in u.gaps]
    assert len(gaps) == 1 and gaps[0].startswith("not read: Salt sysctl.present state 'net.core.somaxconn'")


def test_talos_machine_sysctls_and_sysctlconfig() -> None:
    units = parse_text(TALOS, "worker.yaml")
    s = _settings(units)
    assert s["net.ipv4.tcp_retries2"] == ("3", 5, "talos machine.sysctls")
    assert s["net.ipv4.tcp_abort_on_overflow"][2] == "talos SysctlConfig.params"
    assert {u.name for u in units} == {"worker.yaml#machine", "worker.yaml#SysctlConfig"}


def test_talos_sysctls_not_a_mapping_is_a_gap() -> None:
    units = parse_text("version: v1alpha1\nmachine:\n  sysctls:\n    - net.ipv4.tcp_retries2=3\n", "talos.yaml")
    assert [g for u in units for g in u.gaps] == [
        "not read: Talos machine.sysctls at talos.yaml:4 is not a mapping of key: value"
    ]


def _lint(tmp: Path, name: str, text: str, *args: str, fmt: str = "json"):  # type: ignore[no-untyped-def]
    path = tmp / name
    path.write_text(text)
    return run("lint", str(path), *args, "--format", fmt)


def test_salt_and_talos_findings_through_the_cli(tmp_path: Path) -> None:
    for name, text, rules in (
        ("id.sls", SALT_ID, {"TCP013"}),
        ("name.sls", SALT_NAME, {"TCP013", "TCP014"}),
        ("talos.yaml", TALOS, {"TCP013", "TCP014"}),
    ):
        p = _lint(tmp_path, name, text)
        assert p.returncode == 0, p.stderr
        report = json.loads(p.stdout)
        fired = {f["rule"] for t in report["targets"] for f in t["findings"]}
        assert rules <= fired, (name, fired)
        assert all(t["status"] == "ok" for t in report["targets"])


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "sarif", "junit", "html"])
def test_unread_salt_jinja_is_a_gap_in_every_format(tmp_path: Path, fmt: str) -> None:
    p = _lint(tmp_path, "sysctl.sls", SALT_JINJA, fmt=fmt)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "not read: Salt state with Jinja templating" in p.stdout
    if fmt == "json":
        (t,) = json.loads(p.stdout)["targets"]
        assert t["status"] == "partial" and t["gaps"] and t["findings"] == []
        assert json.loads(p.stdout)["summary"]["exit_code"] == 3


def test_pod_with_only_ipc_sysctls_is_not_ok_no_findings(tmp_path: Path) -> None:
    p = _lint(tmp_path, "pod.yaml", POD_IPC_ONLY)
    report = json.loads(p.stdout)
    fired = [f for t in report["targets"] for f in t["findings"]]
    assert [f["rule"] for f in fired] == ["SYS007"], fired
    assert fired[0]["evidence"]["sysctl"] == "kernel.msgmax"


def test_capture_installed_as_sysctl_d_file(tmp_path: Path) -> None:
    capture = ROOT / "fixtures/corpus/sysctl-dump/centos7.2-3.10.0-327-ceph-node-sysctl-a-annotated.txt"
    d = tmp_path / "rootfs/etc/sysctl.d"
    d.mkdir(parents=True)
    shutil.copy(capture, d / "99-all.conf")
    p = run("lint", "--root", str(tmp_path / "rootfs"), "--format", "json")
    report = json.loads(p.stdout)
    (f,) = [f for t in report["targets"] for f in t["findings"] if f["rule"] == "SYS009"]
    # every `key = value` line is written, an empty value too (procps and systemd-sysctl both write it)
    lines = sum(1 for line in capture.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert f["evidence"]["lines"] == lines
    assert f["evidence"]["read_only_lines"] >= 30  # kernel.osrelease, fs.file-nr, ... (38 on the 6.18.44 list)
    assert "kernel.hostname = vmware" in f["evidence"]["identity"]
    # the same capture kept as a record is judged as a capture, not as deployed configuration
    p = run("lint", str(capture), "--format", "json")
    assert "SYS009" not in {f["rule"] for t in json.loads(p.stdout)["targets"] for f in t["findings"]}


@pytest.mark.parametrize(
    "text,gap",
    [
        ("net.core.somaxconn:\n  sysctl.present: []\n", "it has no literal `value`"),
        ("net.core.somaxconn:\n  sysctl.present: {value: 1}\n", "it has no literal `value`"),
        ("tune:\n  sysctl.present:\n    - name: '{{ k }}'\n    - value: 1\n", "is not a sysctl name"),
        ("net.core.somaxconn:\n  sysctl.present:\n    - value: [1, 2]\n", "it has no literal `value`"),
        ("a: &x\n  sysctl.present:\n    - value: 1\nb: *x\n", "is not a sysctl name"),
    ],
)
def test_odd_salt_states_are_gaps_not_passes(text: str, gap: str) -> None:
    units = parse_text(text, "odd.sls")
    gaps = [g for u in units for g in u.gaps]
    assert gaps and all(g.startswith("not read: Salt sysctl.present state") for g in gaps), gaps
    assert any(gap in g for g in gaps), gaps
