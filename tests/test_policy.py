"""Policy files: parsing, comparison as the kernel reads values, and bad input (one line on stderr, exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tcpaudit.audit import kernel_db
from tcpaudit.fleet import parse_host_list
from tcpaudit.policy import Expectation, PolicyError, check_groups, kernel_int, parse_policy, same_value


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "tcpaudit", *args], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL
    )


def _one_line_exit_2(p: subprocess.CompletedProcess, *fragments: str) -> None:  # type: ignore[type-arg]
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and "validation error" not in p.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


@pytest.mark.parametrize(
    "entry, fragments",
    [
        ('"net.ipv4.tcp_keepalive_tme" = 120', ["unknown sysctl", "did you mean 'net.ipv4.tcp_keepalive_time'"]),
        ("tcp_keepalive_time = 120", ["not a sysctl name"]),
        ('"net.ipv4.tcp_keepalive_time" = ">== 120"', ["malformed bound '>== 120'"]),
        ('"net.ipv4.tcp_keepalive_time" = ">= lots"', ["malformed bound", "not an integer"]),
        ('"net.ipv4.tcp_fin_timeout" = "60..15"', ["the range is empty"]),
        ('"net.ipv4.ip_local_port_range" = "1024 70000"', ["the kernel refuses 70000"]),
        ('"net.ipv4.tcp_keepalive_time" = "1 2"', ["holds one number"]),
        ('"net.ipv4.tcp_keepalive_time" = { expect = 120, reason = "x y z", colour = "red" }', ["colour"]),
    ],
)
def test_bad_policy_is_one_line_exit_2(tmp_path: Path, entry: str, fragments: list[str]) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text(f'[policy]\nreason = "fleet standard"\n{entry}\n')
    snap = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
    some = sorted(snap.glob("*.json"))[0]
    p = _cli(["audit", str(some), "--policy", str(pol)], tmp_path)
    _one_line_exit_2(p, str(pol), *fragments)


def test_policy_in_the_config_file_and_missing_reason(tmp_path: Path) -> None:
    (tmp_path / ".tcpaudit.toml").write_text('[policy]\n"net.ipv4.tcp_keepalive_time" = 120\n')
    some = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "snapshots").glob("*.json"))[0]
    _one_line_exit_2(_cli(["audit", str(some)], tmp_path), ".tcpaudit.toml", "needs a reason")


def test_lint_with_kernel_refuses_a_key_that_kernel_lacks(tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text('[policy]\n"net.ipv4.tcp_tw_recycle" = { expect = 0, reason = "never behind NAT" }\n')
    conf = tmp_path / "99-x.conf"
    conf.write_text("net.ipv4.tcp_fin_timeout = 30\n")
    p = _cli(["lint", str(conf), "--kernel", "5.15.0", "--policy", str(pol)], tmp_path)
    _one_line_exit_2(p, "does not exist on kernel 5.15.0", "removed in 4.12")


def test_lint_judges_files_against_the_policy(tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text('[policy]\nreason = "NAT gateway 350 s"\n"net.ipv4.tcp_keepalive_time" = "<= 300"\n')
    conf = tmp_path / "sysctl.d" / "90-ka.conf"
    conf.parent.mkdir()
    conf.write_text("# keepalive\nnet.ipv4.tcp_keepalive_time = 600\n")
    import json

    p = _cli(["lint", str(conf), "--policy", str(pol), "-f", "json"], tmp_path)
    assert p.returncode in (0, 1), p.stderr
    (t,) = json.loads(p.stdout)["targets"]
    (f,) = [f for f in t["findings"] if f["rule"] == "POL001"]
    assert f["location"] == {"file": str(conf), "line": 2}
    assert f["evidence"]["declared"] == "<= 300" and f["evidence"]["actual"] == "600"


def test_group_matching_no_host_is_refused() -> None:
    pol = parse_policy(
        {"reason": "std", "net.ipv4.tcp_keepalive_time": 120, "group": {"dbs": {"net.ipv4.tcp_keepalive_time": 60}}},
        "p.toml",
        kernel_db(),
    )
    hosts = parse_host_list("[db]\ndb1\n[web]\nweb1\n", "inv")
    with pytest.raises(PolicyError, match=r"\[policy.group.dbs\] matches no host of the inventory \(groups: db, web\)"):
        check_groups(pol, {h.group for h in hosts})
    check_groups(pol, {"dbs", "web"})


def test_fleet_group_matching_no_host_exits_2_before_connecting(tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text('[policy]\nreason = "std"\n[policy.group.dbs]\n"net.ipv4.tcp_keepalive_time" = 60\n')
    inv = tmp_path / "hosts.txt"
    inv.write_text("[db]\n127.0.0.1\n")
    p = _cli(["fleet", "--inventory", str(inv), "--policy", str(pol), "--known-hosts", str(tmp_path / "kh")], tmp_path)
    _one_line_exit_2(p, "[policy.group.dbs] matches no host of the inventory (groups: db)")


@pytest.mark.parametrize(
    "text, n", [("120", 120), ("0120", 0o120), ("0x78", 120), (" 7 ", 7), ("-1", -1), ("12a", None), ("", None)]
)
def test_kernel_int_reads_numbers_as_proc_get_long(text: str, n: int | None) -> None:
    assert kernel_int(text) == n


def test_same_value_and_expectations() -> None:
    assert same_value("32768\t60999", "32768   60999")
    assert same_value("0120", "80") and not same_value("0120", "120")
    assert same_value("cubic  reno", "cubic reno")
    e = Expectation.parse(["<= 10240", ">= 60999"])
    assert e.check("1024 65000") and not e.check("32768 60999") and not e.check("1024")
    assert e.satisfying("32768 60999") == "10240 60999"
    r = Expectation.parse("15..60")
    assert r.check("15") and r.check("60") and not r.check("61")
    with pytest.raises(ValueError, match="malformed bound"):  # per-element bounds are a list, not one string
        Expectation.parse("* >= 131072 *")
    assert Expectation.parse(["*", ">= 131072", "*"]).check("4096 131072 6291456")
    assert Expectation.parse("bbr").check(" bbr ")


def test_group_entries_override_and_scope() -> None:
    pol = parse_policy(
        {
            "reason": "std",
            "net.ipv4.tcp_keepalive_time": 120,
            "net.ipv4.tcp_fin_timeout": {"expect": 30, "scope": "all"},
            "group": {"db": {"net.ipv4.tcp_keepalive_time": {"expect": 60, "severity": "high"}}},
        },
        "p.toml",
        kernel_db(),
    )
    db = pol.for_target("db", "host")
    assert db["net.ipv4.tcp_keepalive_time"].expect.declared == "60" and db["net.ipv4.tcp_keepalive_time"].group
    assert pol.for_target("web", "host")["net.ipv4.tcp_keepalive_time"].expect.declared == "120"
    assert set(pol.for_target(None, "namespaces")) == {"net.ipv4.tcp_fin_timeout"}
