"""The benchmark suite's pieces work (benchmarks/): tiny inputs, real processes, no assertion about time.

`.ci/run` also runs `python benchmarks/run.py --quick` after the tests; these catch a broken piece
earlier and say which one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import _common, ansible_bench, lint_bench, local_bench
from benchmarks import run as bench_run

ROOT = Path(__file__).resolve().parents[1]


def test_machine_info_names_the_machine():
    info = _common.machine_info()
    assert info["cores"] >= 1
    assert info["kernel"] and info["python"] and info["cpu_model"]


def test_measure_process_reports_wall_cpu_and_rss_of_that_child():
    m = _common.measure_process([sys.executable, "-c", "sum(range(10000))"])
    assert set(m) >= {"wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "peak_rss_kb", "rc"}
    assert m["rc"] == 0 and m["peak_rss_kb"] > 0 and m["wall_s"] > 0 and m["cpu_s"] >= 0


def test_peak_rss_is_the_childs_own_not_this_processs():
    ballast = bytearray(200 << 20)  # this process is big; a child must not inherit its high-water mark
    ballast[::4096] = b"x" * len(ballast[::4096])
    m = _common.measure_process([sys.executable, "-c", "pass"])
    assert m["peak_rss_kb"] < 100_000
    del ballast


def test_measure_process_raises_on_a_failing_command():
    with pytest.raises(_common.BenchError, match="exited 3"):
        _common.measure_process([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])


def test_measure_call_and_median():
    m, value = _common.measure_call(lambda: sum(range(1000)))
    assert value == 499500 and m["wall_s"] >= 0
    med = _common.median_measurement([{"wall_s": w, "cpu_s": w, "peak_rss_kb": 1} for w in (3.0, 1.0, 2.0)])
    assert med["wall_s"] == 2.0 and med["n"] == 3 and med["wall_min_s"] == 1.0


def test_bench_env_lets_tcpaudit_cache_bytecode(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert "PYTHONDONTWRITEBYTECODE" not in _common.bench_env()


def test_rows_and_table_show_ratios_and_verdicts():
    s, b = {"wall_s": 0.3, "cpu_s": 0.3}, {"wall_s": 0.2, "cpu_s": 0.25}
    r = _common.row("local", "quiet host", subject="tcpaudit host", baseline="floor", s=s, b=b, target=2.0)
    assert r["ratio_wall"] == pytest.approx(1.5) and r["met"] is True
    fast = _common.row(
        "ansible",
        "10 hosts",
        subject="tcpaudit fleet",
        baseline="ansible",
        s={"wall_s": 1.0},
        b={"wall_s": 3.0},
        target=4.0,
        target_kind="min_speedup",
    )
    assert fast["speedup"] == pytest.approx(3.0) and fast["met"] is False
    gone = _common.unavailable("fleet", "10 hosts", "tcpaudit fleet", "paramiko pool", "not available yet")
    text = _common.render_table([r, fast, gone])
    assert "1.50x" in text and "MISSED" in text and "UNAVAILABLE" in text and "not available yet" in text


def test_floor_reads_the_collector_files_without_importing_tcpaudit():
    m = local_bench.run_floor_once()
    assert m["rc"] == 0 and "sysctls" in m["summary"]
    assert "tcpaudit" not in local_bench.FLOOR_SCRIPT.replace("tcpaudit's", "")
    assert set(local_bench.collector_files()) >= {"netstat", "snmp", "sockstat"}


def test_one_tcpaudit_host_run_is_measured(tmp_path):
    m = local_bench.run_tcpaudit_host_once(cwd=str(tmp_path))
    assert m["rc"] in (0, 1) and m["wall_s"] > 0 and m["peak_rss_kb"] > 0


def test_compare_interleaves_both_sides_once():
    res = local_bench.compare(1, warmup=0)
    assert set(res) == {"tcpaudit", "floor"} and res["tcpaudit"]["n"] == 1


def test_socket_row_reads_sockets_bench_results():
    flat = {
        "sockets": 9990,
        "composition": {"ESTAB": 2500},
        "tcpaudit_s": 0.6,
        "floor_s": 0.4,
        "tcpaudit_cpu_s": 0.5,
        "floor_cpu_s": 0.3,
        "tcpaudit_rss_mib": 60.0,
        "floor_rss_mib": 40.0,
        "findings": [],
    }
    r = local_bench.socket_row(10_000, flat)
    assert r["status"] == "ok" and r["ratio_wall"] == pytest.approx(1.5) and r["subject_m"]["peak_rss_kb"] == 61440
    assert local_bench.socket_row(10_000, {"oops": 1})["status"] == "unavailable"


def test_fleet_results_are_read_in_any_likely_shape():
    nested = {"tcpaudit": {"wall_s": 2.0, "cpu_s": 1.0}, "paramiko": {"median_s": 1.8}}
    assert bench_run._measure_from(nested, ("tcpaudit",))["wall_s"] == 2.0
    assert bench_run._measure_from(nested, ("paramiko",))["wall_s"] == 1.8
    flat = {"xargs_s": 3.0, "xargs_cpu_s": 0.5, "xargs_rss_mib": 2.0}
    assert bench_run._measure_from(flat, ("xargs",)) == {"wall_s": 3.0, "cpu_s": 0.5, "peak_rss_kb": 2048}


def test_fleet_rows_turn_run_fleet_bench_into_ratios(monkeypatch):
    import types

    def m(w, c):
        return {"wall_s": w, "cpu_s": c, "runs": [{"wall_s": w, "cpu_s": c}]}

    def fake(n, rounds=3, cli=True):
        out = {
            "hosts": n,
            "jobs": n,
            "rounds": rounds,
            "tcpaudit": m(2.2, 0.3),
            "paramiko": m(2.0, 0.2),
            "xargs": m(3.0, 1.0),
            "notes": ["fake"],
        }
        if cli:
            out |= {"tcpaudit_cli": m(3.0, 1.0), "paramiko_cli": m(2.9, 0.5)}
        return out

    monkeypatch.setitem(sys.modules, "benchmarks.fleet_bench", types.SimpleNamespace(run_fleet_bench=fake))
    rows = bench_run.fleet_rows([10], quick=False)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert rows[0]["ratio_wall"] == pytest.approx(1.1) and rows[0]["met"] is True
    quick = bench_run.fleet_rows([10], quick=True)
    assert quick[0]["status"] == "ok" and "--quick" in quick[1]["note"]


def test_lint_tree_generator_and_floor(tmp_path):
    tree = lint_bench.generate_tree(tmp_path / "tree", n_sysctl=3, n_manifests=2)
    confs = sorted((tmp_path / "tree" / "etc" / "sysctl.d").glob("*.conf"))
    manifests = sorted((tmp_path / "tree" / "k8s").glob("*.yaml"))
    assert tree["files"] == 5 and len(confs) == 3 and len(manifests) == 2
    for p in manifests:
        docs = list(yaml.safe_load_all(p.read_text()))
        pod = docs[0]["spec"]["template"]["spec"]
        assert pod["securityContext"]["sysctls"] and docs[1]["kind"] == "Service"
    assert all("=" in p.read_text() for p in confs)
    again = lint_bench.generate_tree(tmp_path / "again", n_sysctl=3, n_manifests=2)
    assert again["bytes"] == tree["bytes"]  # deterministic
    floor = lint_bench.run_floor_once(tree["dir"])
    assert floor["summary"].startswith("5 files, 4 YAML documents")


def test_tcpaudit_lint_runs_on_the_tiny_tree(tmp_path):
    why = lint_bench.lint_available()
    if why:
        pytest.skip(why)
    tree = lint_bench.generate_tree(tmp_path / "tree", n_sysctl=3, n_manifests=2)
    m = lint_bench.run_lint_once(tree["dir"], tmp_path / "report.json")
    assert m["rc"] in (0, 1)
    assert lint_bench.report_summary(tmp_path / "report.json")["targets"] >= 5


def test_ansible_files_point_at_the_same_hosts_key_and_known_hosts(tmp_path):
    hs = ansible_bench.HostSet(
        [("h000", "10.250.1.2", 22), ("h001", "127.0.0.1", 2222)],
        "root",
        tmp_path / "id_ed25519",
        tmp_path / "known_hosts",
        tmp_path / "ssh_config",
        "test",
    )
    inv, cfg = ansible_bench.write_ansible_files(hs, tmp_path, forks=2)
    assert "h001 ansible_host=127.0.0.1 ansible_port=2222" in inv.read_text()
    text = cfg.read_text()
    assert f"UserKnownHostsFile={hs.known_hosts}" in text and "StrictHostKeyChecking=yes" in text
    assert f"private_key_file = {hs.key}" in text and "forks = 2" in text
    argv = ansible_bench.ansible_argv(Path("ansible"), inv, "echo '{{ x }}'\n", 2)
    assert argv[argv.index("-f") + 1] == "2" and argv[argv.index("-m") + 1] == "raw"
    b64 = argv[argv.index("-a") + 1].split()[2]
    assert base64.b64decode(b64).decode() == "echo '{{ x }}'\n"
    fleet = ansible_bench.tcpaudit_fleet_argv(hs, 2)
    assert fleet[:3] == [sys.executable, "-m", "tcpaudit"] and "h000" in fleet and str(hs.known_hosts) in fleet


def test_collector_script_is_what_both_fleet_tools_run():
    assert "@@tcpaudit-done" in ansible_bench.collector_script_text()


def test_run_py_works_as_a_script(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and "--quick" in out.stdout


def test_run_py_writes_json_with_machine_info_and_measurements(tmp_path):
    out_file = tmp_path / "r.json"
    rc = bench_run.main(["--quick", "--only", "local,ansible", "--repeats", "1", "--out", str(out_file)])
    assert rc == 0
    data = json.loads(out_file.read_text())
    assert set(data["machine"]) >= {"cores", "kernel", "python", "cpu_model"}
    local = next(r for r in data["rows"] if r["section"] == "local")
    assert local["status"] == "ok" and local["ratio_wall"] > 0
    for m in (local["subject_m"], local["baseline_m"]):
        assert set(m) >= {"wall_s", "cpu_s", "peak_rss_kb"}
    ans = next(r for r in data["rows"] if r["section"] == "ansible")
    assert ans["status"] == "unavailable" and "--quick" in ans["note"]
