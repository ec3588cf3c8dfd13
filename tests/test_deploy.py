"""deploy/: the Prometheus rules (promtool check + a unit test per alert), the PrometheusRule generated
from them, the Kubernetes manifests against the Kubernetes JSON schemas of the oldest and newest release
`kubernetes-validate` ships, the systemd units through `systemd-analyze verify`, and the agreement between
what the alerts query and what tcpaudit's Prometheus reporter emits.

promtool comes from Debian's `prometheus` package and systemd-analyze from `systemd` (scripts/test installs
them as root); without them those tests skip and say so.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import fsfaults

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "tcpaudit-rules.yaml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yaml"))
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
DASHBOARD = DEPLOY / "grafana" / "tcpaudit.json"
IMAGE = DEPLOY / "image"

# Metrics the alerts and the dashboard read that come from other exporters, and from which.
EXTERNAL_METRICS = {
    "node_textfile_scrape_error": "node_exporter's textfile collector",
    "kube_pod_info": "kube-state-metrics",
}

promtool = shutil.which("promtool") or "promtool"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian package `prometheus`; scripts/test installs it as root)",
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> list[dict[str, Any]]:
    return [r for g in _yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


# ---- emitted metric names ------------------------------------------------------------------------------
REPORTER = REPO / "tcpaudit" / "reporters" / "prometheus.py"


def emitted_metrics() -> set[str]:
    """Every metric family name tcpaudit's Prometheus reporter can emit, read from its code: the names it
    passes to prometheus-client's metric families (counters are exposed with `_total`)."""
    code = REPORTER.read_text(encoding="utf-8")
    gauges = set(re.findall(r'GaugeMetricFamily\(\s*"(tcpaudit_[a-z0-9_]+)"', code))
    counters = set(re.findall(r'CounterMetricFamily\(\s*"(tcpaudit_[a-z0-9_]+)"', code))
    # evidence gauges are declared in a table: ("KEY", "tcpaudit_name", "help")
    gauges |= set(re.findall(r'^\s*"(tcpaudit_[a-z0-9_]+)",?\s*$', code, re.M))
    gauges |= set(re.findall(r'\(\s*[\w.]+,\s*"(tcpaudit_[a-z0-9_]+)"', code))
    assert "tcpaudit_findings" in gauges, "the reporter's metric names could not be read"
    return gauges | counters | {c + "_total" for c in counters}


def test_emitted_metrics_are_read_from_the_reporter() -> None:
    names = emitted_metrics()
    assert {"tcpaudit_findings", "tcpaudit_netns_findings", "tcpaudit_rule_info", "tcpaudit_run_success"} <= names
    assert "tcpaudit_paws_rejects_total" in names


# ---- PromQL: which metric names an expression reads ----------------------------------------------------
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label names
    (inside {...} or a by/on/... list), strings, numbers or durations."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, label_replace arguments)
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = _LABEL_LISTS.sub("", s)
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def template_queries(text: str) -> list[str]:
    """The PromQL of `printf "..." ... | query` and `query "..."` calls in an alert template."""
    out = [m.group(1) for m in re.finditer(r'printf\s+"((?:[^"\\]|\\.)*)"[^|}]*\|\s*query', text)]
    out += [m.group(1) for m in re.finditer(r'\bquery\s+"((?:[^"\\]|\\.)*)"', text)]
    return [q.replace('\\"', '"').replace("%q", '"x"') for q in out]


def test_metric_names_parser() -> None:
    expr = """(sum by (instance, rule) (tcpaudit_findings{severity="critical", scope=~"a|b"}) > 0)
      * on (pod_uid) group_left (namespace, pod)
        max by (pod_uid) (label_replace(kube_pod_info, "x", "$1", "uid", "(.+)"))
      or on (instance) rate(node_foo_total[5m] offset 1h) > 3 * (600 + 60) and time() - x:recorded:rate5m > bool 1"""
    assert metric_names(expr) == {"tcpaudit_findings", "kube_pod_info", "node_foo_total", "x:recorded:rate5m"}


# ---- promtool ------------------------------------------------------------------------------------------
@needs_promtool
def test_promtool_check_rules() -> None:
    p = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in p.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "deploy/prometheus/tests/*.yaml holds the promtool unit tests"
    p = subprocess.run(
        [promtool, "test", "rules", *[str(t) for t in RULE_TESTS]], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stdout + p.stderr


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests really compare: a wrong expected label makes promtool fail."""
    text = RULE_TESTS[0].read_text(encoding="utf-8").replace("rule: TCP001", "rule: TCP999", 1)
    bad = RULE_TESTS[0].parent / f".tmp-{os.getpid()}-{RULE_TESTS[0].name}"  # rule_files are relative to it
    bad.write_text(text, encoding="utf-8")
    try:
        p = subprocess.run([promtool, "test", "rules", str(bad)], capture_output=True, text=True, timeout=120)
    finally:
        bad.unlink()
    assert p.returncode != 0


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in _yaml(path)["tests"]:
            for t in case.get("alert_rule_test", []):
                (fires if t.get("exp_alerts") else silent).add(t["alertname"])
    alerts = {a["alert"] for a in _alerts()}
    assert alerts, "no alerts in deploy/prometheus/tcpaudit-rules.yaml"
    assert alerts - fires == set(), "alerts without a unit test in which they fire"
    assert alerts - silent == set(), "alerts without a unit test in which they stay silent"
    assert (fires | silent) - alerts == set(), "unit tests for alerts that do not exist"


def test_every_alert_is_complete() -> None:
    for a in _alerts():
        assert re.fullmatch(r"Tcpaudit[A-Z][A-Za-z]+", a["alert"]), a["alert"]
        assert a["labels"]["severity"] in ("critical", "warning"), a["alert"]
        assert {"summary", "description"} <= set(a["annotations"]), a["alert"]
        assert "for" in a, f"{a['alert']}: no `for:` (would fire on a single evaluation)"


# ---- the metrics the alerts read exist ---------------------------------------------------------------
def _referenced_metrics() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for a in _alerts():
        names = metric_names(a["expr"])
        for text in a["annotations"].values():
            for q in template_queries(text):
                names |= metric_names(q)
        used[a["alert"]] = names
    return used


def test_annotations_query_the_rule_info() -> None:
    assert "tcpaudit_rule_info" in _referenced_metrics()["TcpauditCriticalFinding"]


def test_alerts_read_only_metrics_that_exist() -> None:
    emitted = emitted_metrics()
    for alert, names in _referenced_metrics().items():
        for name in names:
            if name.startswith("tcpaudit_"):
                assert name in emitted, f"{alert} reads {name}, which tcpaudit's Prometheus reporter does not emit"
            else:
                assert name in EXTERNAL_METRICS, f"{alert} reads {name}: neither tcpaudit's nor a known exporter's"


# ---- PrometheusRule ----------------------------------------------------------------------------------
def test_prometheusrule_is_generated_from_the_rules_file() -> None:
    p = subprocess.run(
        [sys.executable, str(DEPLOY / "gen_prometheusrule.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stdout + p.stderr
    cr = _yaml(K8S / "prometheusrule.yaml")
    assert cr["spec"] == _yaml(RULES)


def test_prometheusrule_shape() -> None:
    """The fields prometheus-operator's PrometheusRule CRD (monitoring.coreos.com/v1) requires and accepts.
    (The CRD is not one of the schemas kubernetes-validate ships.)"""
    cr = _yaml(K8S / "prometheusrule.yaml")
    assert cr["apiVersion"] == "monitoring.coreos.com/v1" and cr["kind"] == "PrometheusRule"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", cr["metadata"]["name"])
    duration = re.compile(r"(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)")
    rule_keys = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
    for g in cr["spec"]["groups"]:
        assert set(g) <= {"name", "interval", "rules", "limit", "labels", "query_offset"} and g["name"]
        for r in g["rules"]:
            assert set(r) <= rule_keys, set(r) - rule_keys
            assert isinstance(r["expr"], str) and ("alert" in r) != ("record" in r)
            assert duration.fullmatch(r.get("for", "0")), r.get("for")
            for d in (r.get("labels", {}), r.get("annotations", {})):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())


# ---- Kubernetes manifests ----------------------------------------------------------------------------
def _k8s_resources() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return out


def _schema_versions() -> tuple[str, str]:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (test extra) not installed")
    from kubernetes_validate import utils

    versions = sorted(utils.all_versions(), key=lambda v: tuple(int(x) for x in v.split(".")))
    assert versions, kv
    return versions[0], versions[-1]


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_manifests_validate_against_the_kubernetes_schemas(which: str) -> None:
    oldest, newest = _schema_versions()
    version = oldest if which == "oldest" else newest
    import kubernetes_validate

    checked = []
    for name, doc in _k8s_resources():
        if doc["apiVersion"].startswith(("kustomize.config.k8s.io/", "monitoring.coreos.com/")):
            continue  # not Kubernetes API kinds: Kustomize's file and the CRD kind (checked above)
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(f"{name}:{doc['kind']}")
    assert sorted(checked) == [
        "daemonset.yaml:DaemonSet",
        "namespace.yaml:Namespace",
        "serviceaccount.yaml:ServiceAccount",
    ]


def test_schema_validation_is_strict() -> None:
    """An unknown field (a typo) fails validation: the check above is not vacuous."""
    _oldest, newest = _schema_versions()
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    ds = copy.deepcopy(next(d for _, d in _k8s_resources() if d["kind"] == "DaemonSet"))
    ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(ds, newest, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = _yaml(K8S / "kustomization.yaml")
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kust["resources"]) == files


def _daemonset() -> dict[str, Any]:
    return next(d for _, d in _k8s_resources() if d["kind"] == "DaemonSet")


def test_daemonset_runs_with_the_least_it_needs() -> None:
    ds = _daemonset()
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False and sc["runAsUser"] == 0
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {"SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "NET_RAW"}
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"requests", "limits"} <= set(c["resources"]) and "memory" in c["resources"]["limits"]
    assert {"operator": "Exists"} in pod["tolerations"]
    host_paths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
    assert host_paths == ["/var/lib/prometheus/node-exporter"], "the only host directory is the textfile directory"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    textfile_mount = next(m for m in c["volumeMounts"] if m["name"] == "textfile")["mountPath"]
    out = _agent_args()[_agent_args().index("--format") + 1]
    assert out == f"prometheus:{textfile_mount}/tcpaudit.prom"
    assert all(not m.get("readOnly") for m in mounts.values() if m["name"] == "textfile")


def test_daemonset_image_is_this_version() -> None:
    from tcpaudit import __version__

    (c,) = _daemonset()["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"tcpaudit:{__version__}"


def _agent_args() -> list[str]:
    (c,) = _daemonset()["spec"]["template"]["spec"]["containers"]
    return list(c["args"])


def test_daemonset_agent_command_line_parses() -> None:
    """The DaemonSet's arguments are a valid command line of this tcpaudit (options exist, values parse)."""
    import typer

    import tcpaudit.cli as cli

    group = typer.main.get_command(cli._app.app)
    args = _agent_args()
    cmd = group.commands.get(args[0])  # type: ignore[attr-defined]
    assert cmd is not None, f"the DaemonSet runs `tcpaudit {args[0]}`, which this tcpaudit does not have"
    cmd.make_context(args[0], args[1:])  # raises a UsageError on an unknown option or a bad value


# ---- intervals agree -------------------------------------------------------------------------------
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([a-z]+)", text.strip())
    assert m and m.group(2) in _UNIT, text
    return int(m.group(1)) * _UNIT[m.group(2)]


def _unit_values(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_stale_alert_matches_the_run_intervals() -> None:
    timer = _unit_values(SYSTEMD / "tcpaudit.timer")
    interval, jitter = _seconds(timer["OnUnitActiveSec"][0]), _seconds(timer["RandomizedDelaySec"][0])
    args = _agent_args()
    assert _seconds(args[args.index("--interval") + 1]) == interval
    assert _seconds(args[args.index("--jitter") + 1]) == jitter
    stale = next(a for a in _alerts() if a["alert"] == "TcpauditStale")
    assert f"> 3 * ({interval} + {jitter})" in stale["expr"]


# ---- systemd ---------------------------------------------------------------------------------------
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def test_service_writes_only_into_the_textfile_directory() -> None:
    svc = _unit_values(SYSTEMD / "tcpaudit.service")
    (exec_start,) = svc["ExecStart"]
    out = exec_start.split("--format ", 1)[1].split()[0]
    assert out == f"prometheus:{TEXTFILE_DIR}/tcpaudit.prom"
    assert svc["ReadWritePaths"] == [TEXTFILE_DIR] and svc["ProtectSystem"] == ["strict"]
    assert svc["NoNewPrivileges"] == ["yes"] and svc["UMask"] == ["0022"]
    assert svc["CapabilityBoundingSet"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert "PrivateNetwork" not in svc, "the host's own network namespace is what is audited"
    dropin = _unit_values(SYSTEMD / "all-netns.conf")
    assert dropin["ExecStart"][0] == "" and "--all-netns" in dropin["ExecStart"][1]
    assert dropin["ExecStart"][1].replace(" --all-netns", "") == exec_start


def test_textfile_directory_is_debians_default() -> None:
    exe = shutil.which("prometheus-node-exporter")
    if exe is None:
        pytest.skip("Debian's prometheus-node-exporter is not installed")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    m = re.search(r'--collector\.textfile\.directory="([^"]*)"', p.stdout + p.stderr)
    assert m, "node_exporter --help shows the textfile directory default"
    assert m.group(1) == TEXTFILE_DIR


def _verify_copy(tmp_path: Path, with_dropin: bool) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on copies of the units whose ExecStart points at this tcpaudit (verify
    checks that the binary exists)."""
    exe = shutil.which("tcpaudit") or str(Path(sys.executable).with_name("tcpaudit"))
    if not os.access(exe, os.X_OK):
        pytest.skip("no tcpaudit executable next to this interpreter")
    for name in ("tcpaudit.service", "tcpaudit.timer"):
        text = (SYSTEMD / name).read_text(encoding="utf-8").replace("/usr/local/bin/tcpaudit", exe)
        (tmp_path / name).write_text(text, encoding="utf-8")
    if with_dropin:
        d = tmp_path / "tcpaudit.service.d"
        d.mkdir()
        text = (SYSTEMD / "all-netns.conf").read_text(encoding="utf-8").replace("/usr/local/bin/tcpaudit", exe)
        (d / "all-netns.conf").write_text(text, encoding="utf-8")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        ["systemd-analyze", "verify", "tcpaudit.service", "tcpaudit.timer"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (Debian package `systemd`)"
)


@needs_systemd_analyze
@pytest.mark.parametrize("with_dropin", [False, True], ids=["service", "service+all-netns"])
def test_systemd_analyze_verify(tmp_path: Path, with_dropin: bool) -> None:
    p = _verify_copy(tmp_path, with_dropin)
    # verify exits 0 on unknown keys and bad values and only prints them: any output is a failure
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    _verify_copy(tmp_path, False)
    svc = tmp_path / "tcpaudit.service"
    svc.write_text(svc.read_text().replace("ProtectHome=yes", "ProtectHome=perhaps"))
    p = subprocess.run(
        ["systemd-analyze", "verify", str(svc)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert "protect home value" in p.stdout + p.stderr


@needs_systemd_analyze
def test_systemd_exposure_score(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=yes` rates the service "OK" or better (below 4.0)."""
    _verify_copy(tmp_path, False)
    p = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(tmp_path / "tcpaudit.service")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    m = re.search(r"Overall exposure level for tcpaudit\.service: (\d+\.\d+)", p.stdout + p.stderr)
    if m is None and "offline" in p.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {p.stderr.strip()[:200]}")
    assert m, p.stdout[-500:] + p.stderr[-500:]
    assert float(m.group(1)) < 4.0, m.group(0)


# ---- Grafana ---------------------------------------------------------------------------------------
# How the checks fill in the dashboard's variables: every node (the $node variable's "All", a regex), and
# Grafana's interval macros as fixed durations.
DASHBOARD_VARIABLES = {"node": ".*", "__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def substitute(expr: str) -> str:
    """The PromQL Grafana sends for `expr`, with DASHBOARD_VARIABLES; an unknown variable fails."""

    def var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in DASHBOARD_VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return DASHBOARD_VARIABLES[name]

    # `$1` (a label_replace group) is no variable: Grafana leaves names it does not know as they are
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)", var, expr)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable, variables substituted; a variable's
    label_values(METRIC, LABEL) becomes the selector METRIC (what Grafana asks the series API for)."""
    out: list[tuple[str, str]] = []
    board = dashboard()
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
            assert m, f"variable {v['name']}: {q}"
            out.append((f"variable {v['name']}", substitute(m.group(1))))
    for p in _panels(board):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", substitute(t["expr"])))
    return out


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row keeps its panels inside it
    return out


def test_dashboard_is_provisioning_ready() -> None:
    """A dashboard file Grafana's file provisioning (and the UI's import) takes as it is: no exported-dashboard
    placeholders, a fixed uid, the Prometheus data source chosen by a variable, panels on the 24-column grid
    without overlaps, and every variable a query uses defined."""
    text = DASHBOARD.read_text(encoding="utf-8")
    board = dashboard()
    assert "__inputs" not in board and "${DS_" not in text, "an exported dashboard's placeholders"
    assert board.get("id") is None and re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]) and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["node"]["includeAll"] and variables["node"]["allValue"] == DASHBOARD_VARIABLES["node"]
    assert set(variables) - {"datasource"} <= set(DASHBOARD_VARIABLES)
    panels = _panels(board)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh") and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in {"stat", "timeseries", "table", "gauge", "bargauge"}, p["type"]
        assert p["datasource"] == DATASOURCE and p.get("description"), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]
    assert len(dashboard_queries()) >= 15


def test_substitute() -> None:
    assert substitute('x{instance=~"$node"}[$__rate_interval] ${node} [[node]]') == 'x{instance=~".*"}[5m] .* .*'
    with pytest.raises(AssertionError, match="unknown dashboard variable"):
        substitute("x{a=~'$nosuch'}")


def test_dashboard_reads_only_metrics_that_exist() -> None:
    emitted = emitted_metrics()
    for where, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{where} reads no metric: {expr}"
        for name in names:
            assert name in emitted or name in EXTERNAL_METRICS, f"{where} reads {name}: {expr}"


def test_dashboard_shows_what_it_is_for() -> None:
    """Findings by severity per node, firing rules with their titles, pods joined to kube_pod_info by UID, run
    health and staleness, and every evidence metric the reporter emits."""
    queries = [q for _, q in dashboard_queries()]
    read = set().union(*(metric_names(q) for q in queries))
    evidence = {n for n in emitted_metrics() if n not in {"tcpaudit_paws_rejects"}} - {
        "tcpaudit_findings_suppressed",
        "tcpaudit_checks",
        "tcpaudit_rule_info",
        "tcpaudit_build_info",
    }
    assert evidence - read == set(), "emitted metrics the dashboard does not show"
    assert any("by (instance, severity)" in q and "tcpaudit_findings" in q for q in queries)
    assert any("tcpaudit_rule_info" in q and "group_left (title)" in q for q in queries)
    pods = [q for q in queries if "kube_pod_info" in q]
    assert pods and all('label_replace(kube_pod_info, "pod_uid", "$1", "uid", "(.+)")' in q for q in pods)
    assert all("on (pod_uid)" in q and "tcpaudit_netns_findings" in q for q in pods)
    assert any("time() - tcpaudit_last_run_timestamp_seconds" in q for q in queries)


def _promtool_check_queries(tmp_path: Path, queries: list[str]) -> subprocess.CompletedProcess[str]:
    """promtool parses PromQL only inside rules: each query becomes a recording rule."""
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)]}
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    queries = [q for _, q in dashboard_queries()]
    p = _promtool_check_queries(tmp_path, queries)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(queries)} rules found" in p.stdout


@needs_promtool
def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    p = _promtool_check_queries(tmp_path, ['sum by (instance (tcpaudit_findings{instance=~".*"})'])
    assert p.returncode != 0


# ---- the image -------------------------------------------------------------------------------------
def _build_sh_config() -> dict[str, str]:
    text = (IMAGE / "build.sh").read_text(encoding="utf-8")
    return {
        "suite": re.search(r'suite="\$\{SUITE:-(\w+)\}"', text).group(1),  # type: ignore[union-attr]
        "entrypoint": re.search(r"--config\.entrypoint (\S+)", text).group(1),  # type: ignore[union-attr]
        "user": re.search(r"--config\.user (\S+)", text).group(1),  # type: ignore[union-attr]
        "path": re.search(r"--config\.env (PATH=\S+)", text).group(1),  # type: ignore[union-attr]
    }


def test_dockerfile_builds_the_image_build_sh_builds() -> None:
    """The Dockerfile (for those with a registry) and build.sh (without one) make the same image: the same
    Debian release, packages.txt, entrypoint, user and PATH; build.sh's result is what the DaemonSet names."""
    df = (IMAGE / "Dockerfile").read_text(encoding="utf-8")
    cfg = _build_sh_config()
    froms = re.findall(r"^FROM (\S+)", df, re.M)
    assert froms and all(f == f"debian:{cfg['suite']}-slim" for f in froms), froms
    assert "COPY deploy/image/packages.txt" in df and "mmdebstrap" in (IMAGE / "build.sh").read_text()
    assert f'ENTRYPOINT ["{cfg["entrypoint"]}"]' in df
    assert re.search(rf"^USER {re.escape(cfg['user'])}$", df, re.M)
    assert cfg["path"] in df.replace("ENV ", "")
    assert "-c /src/constraints/ci.txt" in df and '-c "$repo/constraints/ci.txt"' in (IMAGE / "build.sh").read_text()
    packages = [ln.split("#")[0].strip() for ln in (IMAGE / "packages.txt").read_text().splitlines()]
    assert {"python3", "python3-venv", "iproute2", "iptables"} <= {p for p in packages if p}


# ---- bad input at the deployed command lines ---------------------------------------------------------
# The systemd service's and the DaemonSet's own command lines (the textfile path moved to a test directory;
# the DaemonSet's without --all-netns, which would audit every namespace of this machine, and for one run):
# a missing or unwritable textfile directory, a full disk, a second writer. Each is one line on stderr, exit 5
# (README "Exit codes"), and the previous file intact; the agent, whose job is to keep going, logs a failed
# write and tries again next interval (exit 0 when its runs are done).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _deployed_argv(which: str, out: Path) -> list[str]:
    if which == "systemd":
        (exec_start,) = _unit_values(SYSTEMD / "tcpaudit.service")["ExecStart"]
        argv = exec_start.split()[1:]
    else:
        argv = [a for a in _agent_args() if a != "--all-netns"] + ["--runs", "1"]
    i = argv.index("--format") + 1
    assert argv[i].startswith("prometheus:")
    argv[i] = f"prometheus:{out}"
    return [sys.executable, "-m", "tcpaudit", *argv]


def _run_deployed(which: str, out: Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    argv = _deployed_argv(which, out)
    return subprocess.run(
        [*NOBODY, *argv] if as_nobody else argv, capture_output=True, text=True, timeout=300, cwd=REPO
    )


def _one_line(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    for n in needles:
        assert n in lines[0], lines[0]


DEPLOYED = pytest.mark.parametrize("which", ["systemd", "daemonset"])


@DEPLOYED
def test_missing_textfile_directory(which: str, tmp_path: Path) -> None:
    out = tmp_path / "nosuch" / "tcpaudit.prom"
    _one_line(_run_deployed(which, out), 5, str(out), "no such directory")
    assert not (tmp_path / "nosuch").exists()


@DEPLOYED
def test_unwritable_textfile_directory(which: str, tmp_path: Path) -> None:
    """node_exporter's directory, owned by root, and tcpaudit running as another user (no DAC override)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run tcpaudit as nobody")
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import tcpaudit"], capture_output=True, cwd=REPO)
    if probe.returncode != 0:
        pytest.skip("nobody cannot run this checkout's interpreter")
    tmp_path.chmod(0o755)
    textfile = tmp_path / "textfile"
    textfile.mkdir(mode=0o755)
    out = textfile / "tcpaudit.prom"
    out.write_text("previous\n")
    _one_line(_run_deployed(which, out, as_nobody=True), 5, str(out), "Permission denied")
    assert out.read_text() == "previous\n"
    assert [p.name for p in textfile.iterdir()] == ["tcpaudit.prom"]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with fsfaults.small_tmpfs(tmp_path, "ta-deploy2-tmpfs", "64k") as mnt:
        yield mnt


@DEPLOYED
def test_full_disk(which: str, small_tmpfs: Path) -> None:
    out = small_tmpfs / "tcpaudit.prom"
    out.write_text("previous\n")
    fsfaults.fill(small_tmpfs)  # to the last block
    p = _run_deployed(which, out)
    if which == "systemd":
        _one_line(p, 5, str(out), "no space left on device")
    else:  # the agent logs the failed write and goes on; its one run is done
        _one_line(p, 0, str(out), "no space left on device")
    assert out.read_text() == "previous\n"
    assert sorted(x.name for x in small_tmpfs.iterdir() if not x.name.endswith(".lock")) == ["filler", "tcpaudit.prom"]


def test_second_writer_of_the_textfile(tmp_path: Path) -> None:
    """The DaemonSet's agent holds the file; the systemd service's run on the same node is refused."""
    out = tmp_path / "tcpaudit.prom"
    agent_argv = _deployed_argv("daemonset", out)
    agent_argv = agent_argv[: agent_argv.index("--runs")]  # until SIGTERM
    agent = subprocess.Popen(agent_argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            assert agent.poll() is None, agent.communicate()
            assert time.monotonic() < deadline, "the agent wrote nothing"
            time.sleep(0.1)
        before = out.read_bytes()
        _one_line(_run_deployed("systemd", out), 5, str(out), "another tcpaudit", f"pid {agent.pid}")
        assert out.read_bytes() == before
    finally:
        agent.terminate()
        agent.communicate(timeout=60)
    assert agent.returncode == 0


# ---- the documented commands -------------------------------------------------------------------------
README = REPO / "README.md"
DEPLOY_README = DEPLOY / "README.md"
# Programs the docs may name that these tests cannot run here (no systemd as PID 1, no cluster, no docker
# daemon): their repository paths are still checked.
NOT_RUN = {"install", "systemctl", "kubectl", "kustomize", "docker", "ctr", "apt-get", "ln", "ansible", "skopeo"}


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def _commands(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.extend(part.strip() for part in line.split("&&"))
    return out


def continuous_audit_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Continuous audit\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _check_command(cmd: str, tmp_path: Path) -> str:
    """Check one documented command against this checkout; returns the program's name."""
    import shlex

    import typer

    import tcpaudit.cli as cli
    from tcpaudit import __version__

    script = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "collector-script", "path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    argv = shlex.split(cmd.replace('"$(tcpaudit collector-script path)"', shlex.quote(script)))
    prog = argv[0]
    for arg in argv[1:]:
        if arg.startswith("deploy/"):
            assert (REPO / arg).exists(), f"{cmd}: {arg} does not exist"
        if arg.startswith("build/image/"):
            assert arg == f"build/image/tcpaudit-{__version__}.tar", f"{cmd}: build.sh writes no {arg}"
            assert '"$out/tcpaudit-$version.tar"' in (IMAGE / "build.sh").read_text()
    if prog == "tcpaudit":
        group = typer.main.get_command(cli._app.app)
        sub = group.commands[argv[1]]  # type: ignore[attr-defined]
        sub.make_context(argv[1], argv[2:])  # a UsageError on an unknown option or bad value
    elif prog == "promtool":
        if shutil.which("promtool") is None:
            pytest.skip("promtool not installed")
        p = subprocess.run([promtool, *argv[1:]], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert p.returncode == 0, cmd + p.stdout + p.stderr
    elif prog == "python3":
        assert argv[1:3] == ["-m", "venv"] or (REPO / argv[1]).is_file(), cmd
    elif prog == "deploy/image/build.sh":
        assert os.access(REPO / prog, os.X_OK), cmd
    elif prog == "ansible":
        # the form tests/test_ansible_tree.py runs for real (with -i INVENTORY in front of -m)
        assert argv[1:] == ["all", "-m", "script", "-a", script, "-t", "DIR"] and os.path.isfile(script), argv
    elif prog == "systemctl" and "enable" in argv:
        for unit in argv[argv.index("enable") + 1 :]:
            assert unit.startswith("-") or (SYSTEMD / unit).exists(), cmd
    elif prog.startswith("/opt/tcpaudit/bin/"):
        assert argv[1:3] == ["install", "."] and prog.endswith("/pip"), cmd
    else:
        assert prog in NOT_RUN, f"{cmd}: a program these tests know nothing about"
    return prog


def test_continuous_audit_commands_work(tmp_path: Path) -> None:
    """README's "Continuous audit": each command names files that exist, tcpaudit's parse with this CLI, promtool's
    run and pass, the Ansible line is the one tests/test_ansible_tree.py runs."""
    (block,) = _sh_blocks(continuous_audit_section())
    progs = [_check_command(c, tmp_path) for c in _commands(block)]
    assert {"tcpaudit", "promtool", "ansible", "kubectl", "deploy/image/build.sh"} <= set(progs)


def test_deploy_readme_commands_work(tmp_path: Path) -> None:
    progs = []
    for block in _sh_blocks(DEPLOY_README.read_text(encoding="utf-8")):
        progs += [_check_command(c, tmp_path) for c in _commands(block)]
    assert {"promtool", "deploy/image/build.sh", "kubectl", "systemctl"} <= set(progs)
