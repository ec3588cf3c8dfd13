"""End to end through the real pipeline: tcpaudit -> textfile -> node_exporter -> Prometheus -> PromQL.

A network namespace the test creates gets a risky setting (tcp_rfc1337=1: TCP003, medium with clients behind
NAT); `tcpaudit host` runs inside it and writes prometheus:FILE; Debian's `prometheus-node-exporter` (its
textfile collector only) and `prometheus` (a generated config, 1 s scrape interval, a temporary storage dir)
run as the test's own processes on 127.0.0.1 ports the kernel chose, never the packages' services or default
ports; the test polls Prometheus' HTTP API with a deadline until the query returns the finding.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .netns import Netns, require_netns
from .test_deploy import dashboard_queries, metric_names

NODE_EXPORTER = shutil.which("prometheus-node-exporter")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listens(pid: int, port: int) -> bool:
    """Process pid holds the socket listening on 127.0.0.1:port (not some other process that took the port)."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            cols = row.split()
            if cols[1] == want and cols[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return r.read()  # type: ignore[no-any-return]


class Daemon:
    """A process the test started, listening on 127.0.0.1:port; `start` retries with a new port if the one
    picked was taken in between."""

    def __init__(self, argv_for_port: Any, ready_path: str, log: Path) -> None:
        self.argv_for_port = argv_for_port
        self.ready_path = ready_path
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 120) -> Daemon:
        for _attempt in range(5):
            self.port = _free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(self.argv_for_port(self.port), stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                # the answer must come from this process: another one may have taken the port in between
                if _listens(self.proc.pid, self.port):
                    try:
                        _get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2)
                        return self
                    except OSError:
                        pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError(f"{self.argv_for_port(0)[0]} did not come up: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_netns()
    ns = Netns(name=f"ta-prom-{secrets.token_hex(3)}").create()
    try:
        yield ns
    finally:
        ns.close()


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    doc = json.loads(_get(url))
    assert doc["status"] == "success", doc
    return doc["data"]["result"]  # type: ignore[no-any-return]


def check_dashboard(port: int, exposition: str) -> None:
    """Every query of deploy/grafana/tcpaudit.json evaluates; the ones that read only series this run wrote
    (and node_exporter's) return data. The others read what this test does not make: kube-state-metrics'
    kube_pod_info, and the per-namespace series of --all-netns."""
    present = {s.name for fam in text_string_to_metric_families(exposition) for s in fam.samples}
    present |= {"node_textfile_scrape_error"}
    pending = {}
    for where, promql in dashboard_queries():
        result = query(port, promql)  # evaluates (a parse or evaluation error fails in query())
        if metric_names(promql) <= present and not result:
            pending[where] = promql  # a range function may need a second scrape first
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        pending = {w: q for w, q in pending.items() if not query(port, q)}
        time.sleep(0.5)
    assert not pending, f"dashboard queries without data: {pending}"
    provoked = [q for _, q in dashboard_queries() if metric_names(q) <= present]
    assert len(provoked) >= 10, provoked


def test_finding_reaches_promql(netns: Netns, tmp_path: Path) -> None:
    if not (NODE_EXPORTER and PROMETHEUS and PROMTOOL):
        pytest.skip("needs Debian's prometheus-node-exporter and prometheus packages (scripts/test installs them)")
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    prom_file = textfile_dir / "tcpaudit.prom"

    # 1. provoke a real finding in a real namespace, and let tcpaudit write the textfile from inside it
    netns.sysctl(net__ipv4__tcp_rfc1337=1)
    argv = [sys.executable, "-m", "tcpaudit", "host", "--clients-behind-nat", "yes"]
    r = subprocess.run(
        netns.argv([*argv, "--format", f"prometheus:{prom_file}"]),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=netns.workdir,
    )
    assert r.returncode in (0, 1), r.stderr
    text = prom_file.read_text()

    # 2. the exposition passes promtool and prometheus-client's parser
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    local = {
        (s.labels["rule"], s.labels["severity"]): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "tcpaudit_findings"
    }
    assert local[("TCP003", "medium")] == 1

    # 3. node_exporter (textfile collector only) and Prometheus scraping it, on ports of their own
    node = Daemon(
        lambda port: [
            NODE_EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
        ],
        "/metrics",
        tmp_path / "node_exporter.log",
    )
    prom: Daemon | None = None
    try:
        node.start()
        assert b'tcpaudit_findings{rule="TCP003",scope="host",severity="medium"} 1' in _get(
            f"http://127.0.0.1:{node.port}/metrics"
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: node\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{node.port}']\n"
        )
        data = tmp_path / "tsdb"
        prom = Daemon(
            lambda port: [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            tmp_path / "prometheus.log",
        ).start()

        # 4. PromQL returns the finding with its rule and severity (poll until the first scrapes are in)
        deadline = time.monotonic() + 180
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = query(prom.port, 'tcpaudit_findings{scope="host"} > 0')
            if result:
                break
            time.sleep(0.5)
        fired = {(x["metric"]["rule"], x["metric"]["severity"]) for x in result}
        assert ("TCP003", "medium") in fired, (result, (tmp_path / "prometheus.log").read_text()[-2000:])
        # what the file says is what Prometheus has, series for series
        assert fired == {k for k, v in local.items() if v > 0}
        zeros = query(prom.port, 'tcpaudit_findings{rule="TCP003",severity!="medium"}')
        assert len(zeros) == 4 and all(float(x["value"][1]) == 0 for x in zeros)
        assert query(prom.port, "node_textfile_scrape_error == 0"), "node_exporter read the textfile without error"
        info = query(prom.port, 'tcpaudit_rule_info{rule="TCP003"}')
        assert info and info[0]["metric"]["severity"] == "medium"

        # 5. the Grafana dashboard's queries, as Grafana sends them, against this Prometheus
        check_dashboard(prom.port, text)
    finally:
        if prom is not None:
            prom.stop()
        node.stop()
    assert os.path.exists(prom_file)
