"""Every file of the third-party corpus (fixtures/corpus) lints without a crash, and the verdicts of
fixtures/corpus/SOURCES.md hold: rules that must fire, rules that must not.

The table also keeps the verdicts of the corpus files that are not carried (no licence allows redistributing them;
SOURCES.md lists them under "Not carried"). `TCPAUDIT_CORPUS=DIR` runs the table against a directory that holds the
whole corpus; by default it runs against fixtures/corpus and the rows of files not carried are not collected.

A verdict that needs a rule (or knowledge) tcpaudit does not have yet is listed under `pending`: the test reports
it as a PendingVerdict warning and does not fail on it.

Row keys:
  fire / not   rules for the default run (a current kernel, or kernel.osrelease of a `sysctl -a` capture);
               "RULE=sev" also pins the worst severity, "RULE>=sev" in `not` only forbids that severity and above
  clean        nothing at severity low or above is located in the file
  runs         extra runs with kernel / nat_idle_timeout / clients_behind_nat and their own fire / not
  pending      SOURCES.md verdicts with no rule yet
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from tcpaudit.audit import AuditOptions
from tcpaudit.context import ContextOptions
from tcpaudit.lint import lint_paths
from tcpaudit.model import Severity, Target

from .cli import run

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
CORPUS = Path(os.environ.get("TCPAUDIT_CORPUS") or FIXTURE_CORPUS)
EL7 = "3.10.0-1160.el7.x86_64"
NAT = {"nat_idle_timeout": 350}  # AWS NLB; the SOURCES rows say "warn behind ELB/NLB/NAT"
NOTHING = ["SYS001", "SYS002", "SYS003", "SYS004", "TCP001"]


class PendingVerdict(UserWarning):
    """A SOURCES.md verdict that needs a rule or knowledge tcpaudit does not have yet."""


TABLE: dict[str, dict[str, Any]] = {
    # ---- sysctl-conf -------------------------------------------------------------------------
    "sysctl-conf/akoscomp-proxybenchmark-sysctl-w.txt": dict(
        fire=["PORT003", "TCP004", "TCP011=info"], not_=["TCP001", "SYS001", "SYS002", "TCP005", "TCP012"]
    ),
    "sysctl-conf/aks-agentbaker-sysctl-d-60-CIS.conf": dict(
        clean=True, not_=NOTHING, runs=[dict(**NAT, fire=["NAT001"])]
    ),
    "sysctl-conf/amazon-eks-ami-files-sysctl.conf": dict(
        clean=True, not_=NOTHING, runs=[dict(kernel="4.14.0", fire=["SYS001=high"])]
    ),  # the key came in 5.6
    "sysctl-conf/billywhizz-dv8-sysctl-w.txt": dict(
        fire=["SYS001=high", "TCP002", "TCP012=medium", "SYS005=high", "SYS006=info", "TCP006=info"],
        not_=["TCP001", "TCP011"],
        runs=[
            dict(
                kernel="4.9.0",
                clients_behind_nat="yes",
                fire=["TCP001=low", "TCP002", "TCP012=info", "TCP006=info"],
                not_=["SYS001", "SYS006"],
            ),
            dict(kernel="3.10.0", fire=["TCP006=high"]),
        ],  # somaxconn 131072 wraps to 0 in a 16-bit backlog
        pending=["rp_filter=0 (out of the TCP/NAT rule set)"],
    ),
    "sysctl-conf/bottlerocket-release-sysctl.conf": dict(
        fire=["PORT003", "CT006=info"], not_=NOTHING + ["TCP005", "NAT001", "CT006>=low"]
    ),
    "sysctl-conf/canonical-content-cache-operator-sysctl.conf": dict(
        clean=True, not_=NOTHING, runs=[dict(**NAT, fire=["NAT001"])]
    ),
    "sysctl-conf/chinchihfeng-nginx-role-sysctl.conf": dict(
        # tw_recycle = 0 on a kernel without the key: dead configuration, low (issue 16)
        fire=["SYS001=low", "TCP003", "TCP004", "PORT003"],
        not_=["TCP001", "SYS002", "TCP011>=low"],
        runs=[dict(kernel=EL7, fire=["TCP003"], not_=["SYS001", "TCP001"]), dict(**NAT, not_=["NAT001"])],
    ),
    "sysctl-conf/clay-wangzhi-ansible-role-sysinit-sysctl.conf": dict(
        fire=["SYS001=high", "TCP002", "TCP005", "TCP009", "PORT003", "SYS003", "TCP004", "TCP011=info"],
        not_=["TCP001", "TCP012", "SYS005"],
        runs=[
            dict(
                kernel=EL7,
                clients_behind_nat="yes",
                fire=["TCP001=low", "TCP002", "TCP005", "TCP011=info"],
                not_=["SYS001"],
            )
        ],
    ),
    "sysctl-conf/coolsnowwolf-lede-sysctl-nf-conntrack.conf": dict(
        fire=["SYS001=high", "CT006=low"],
        not_=["SYS006"],  # on 6.x the helper key is gone: SYS001, not SYS006
        runs=[dict(kernel="5.15.0", fire=["CT006=low", "SYS006=low"], not_=["SYS001"])],
    ),
    "sysctl-conf/daixijun-ansible-role-sysctl-sysctl.conf": dict(
        fire=["TCP005", "TCP004", "SYS006=low"],
        not_=["TCP001", "SYS001", "SYS002", "TCP011>=low"],
        runs=[dict(nat_idle_timeout=900, not_=["NAT001", "TCP011>=low"])],
    ),  # keepalive 600 s: safe for >= 10 min
    "sysctl-conf/dev-sec-os-hardening-defaults-main.yml": dict(
        fire=["TCP002", "TCP003"], not_=["TCP001", "SYS001", "SYS002", "SYS004"]
    ),
    "sysctl-conf/du2016-cloud-native-devops-nf_conntrack-tuning.md": dict(
        fire=["CT004", "CT005", "SYS006=info"], not_=NOTHING + ["SYS006>=low"]
    ),
    "sysctl-conf/error404-vps-ddos-protection-sysctl.conf": dict(not_=NOTHING + ["TCP007", "TCP005", "CT004"]),
    "sysctl-conf/galliumos-procps-sysctl.conf": dict(clean=True, not_=NOTHING),
    "sysctl-conf/gandi-vm-config-sysctl.conf": dict(fire=["SYS002=high"], not_=["SYS001", "SYS004", "TCP001"]),
    "sysctl-conf/hawshemi-linux-optimizer-sysctl.conf": dict(
        fire=["TCP004", "SYS005=info"],
        not_=NOTHING + ["CT006>=low", "SYS005>=low"],
        runs=[dict(**NAT, fire=["NAT001"])],
    ),
    "sysctl-conf/hxhgts-tcpoptimization-sysctl.conf": dict(
        fire=["TCP002", "TCP009", "PORT003", "SYS005=medium", "TCP011=info"], not_=["SYS004", "TCP001", "TCP012"]
    ),
    "sysctl-conf/hyunseungbum-sbhyun-config-sysctl.conf": dict(
        fire=["SYS002=high", "SYS001", "TCP003", "TCP004", "SYS006=low"],
        not_=["TCP001", "SYS004", "TCP011"],
        runs=[dict(**NAT, fire=["NAT001"])],
    ),  # the keepalive lines are rejected, so the 7200 s default remains
    "sysctl-conf/isucon11-8picoz-etc-sysctl.conf": dict(fire=["TCP004"], not_=NOTHING + ["TCP005", "PORT003>=low"]),
    "sysctl-conf/khicks-nat-pi-sysctl.conf": dict(  # a NAT gateway on conntrack defaults: a note, not a risk
        clean=True, fire=["CT006=info"], not_=NOTHING + ["CT006>=low"]
    ),
    "sysctl-conf/l2dsr-lb-poc-sysctl.txt": dict(
        # net.core.netdev_weight exists on no indexed kernel (the key is net.core.dev_weight): SYS001 (issue 16)
        fire=["TCP011=info", "CT006=info", "TCP006=info", "SYS005=info", "SYS001=high"],
        not_=[n for n in NOTHING if n != "SYS001"] + ["TCP004", "CT006>=low"],
        runs=[
            dict(**NAT, fire=["TCP011=info"], not_=["NAT001"]),
            dict(kernel="5.15.0", fire=["CT006=low"]),  # the random 8..31 conntrack chain limit (5.15..6.2)
            dict(kernel="3.10.0", fire=["TCP006=low"]),
        ],
    ),  # somaxconn 500000 wraps to 41248
    "sysctl-conf/linuxkit-00-linuxkit.conf": dict(clean=True, not_=NOTHING),
    "sysctl-conf/microdevops-formula-salt-pillar-kubernetes.sls": dict(
        clean=True,
        fire=["CT006=info"],
        not_=NOTHING + ["CT006>=low"],
        pending=["fs.inotify limits of 2099999999 are absurd (outside the TCP/NAT rule set)"],
    ),
    "sysctl-conf/migrgh-linux-default-hardening-sysctl.conf": dict(
        fire=["TCP003=low"],
        not_=["TCP001", "SYS002"],
        pending=["kernel.unprivileged_userns_clone is Debian-only (kernel_db covers upstream net.* keys only)"],
    ),
    "sysctl-conf/neocities-sysctl.conf": dict(  # absurd backlogs: harmless since 4.1, wrapped or refused before
        clean=True,
        fire=["TCP006=info"],
        not_=NOTHING + ["TCP005", "SYS005"],
        runs=[
            dict(kernel="3.10.0", fire=["TCP006=low"]),
            dict(kernel="4.0.5", fire=["TCP006=medium"]),
            dict(kernel=EL7, fire=["TCP006=low"]),
        ],
    ),
    "sysctl-conf/newhuan-mds-nginx-etc_sysctl.conf.md": dict(
        fire=["TCP005", "TCP004"], not_=NOTHING + ["TCP011>=low"], runs=[dict(**NAT, not_=["NAT001", "TCP011>=low"])]
    ),
    "sysctl-conf/openwrt-base-files-10-default.conf": dict(
        clean=True,
        not_=NOTHING + ["TCP011>=low", "TCP012", "CT006>=low"],
        runs=[dict(**NAT, not_=["NAT001", "TCP011>=low"])],
    ),
    "sysctl-conf/openwrt-sysctl-nf-conntrack.conf": dict(clean=True, not_=NOTHING + ["CT005", "CT006"]),
    "sysctl-conf/systemd-50-default.conf": dict(clean=True, not_=NOTHING),
    "sysctl-conf/tikv-terraform-tikv-bench-sysctl.conf": dict(fire=["TCP007"], not_=NOTHING),
    "sysctl-conf/tuned-network-latency-tuned.conf": dict(clean=True, not_=NOTHING),
    "sysctl-conf/ubuntu-22.04-stock-sysctl-DariuszMak.conf": dict(clean=True, not_=NOTHING),
    # ---- sysctl -a captures: judged for their own kernel (kernel.osrelease) ---------------------
    "sysctl-dump/amzn1-4.14.55-ec2-docker-host-sysctl-a.txt": dict(
        not_=NOTHING + ["SYS003", "TCP011", "TCP012", "SYS005", "SYS006", "CT006"], runs=[dict(**NAT, fire=["NAT001"])]
    ),
    "sysctl-dump/centos7.2-3.10.0-327-ceph-node-sysctl-a-annotated.txt": dict(
        fire=["SYS002", "TCP005"],
        not_=["TCP001", "SYS001", "SYS003", "SYS004", "TCP011", "TCP012", "SYS005", "SYS006", "CT006"],
    ),  # SYS002: the '# ...' notes
    "sysctl-dump/rhcos-4.18-el8-openshift-master-sosreport-sysctl-a.txt": dict(
        fire=["TCP006"],
        not_=NOTHING + ["SYS003", "TCP011", "TCP012", "SYS005", "SYS006", "CT006"],
        runs=[dict(**NAT, fire=["NAT001"])],
    ),
    # ---- Kubernetes --------------------------------------------------------------------------
    # SOURCES calls the port range "fine width": the shell splits the unquoted '32767 65535' into two arguments,
    # so sysctl writes only 32767 and fails on 65535 - SYS002 reports that (a deliberate deviation).
    "k8s/ingress-nginx-sysctl-initcontainer-patch.json": dict(fire=["SYS002=medium"], not_=["SYS001", "SYS004"]),
    "k8s/logic3579-helm-init-containers-sysctl.tpl": dict(fire=["TCP009"], not_=NOTHING),
    "k8s/ocp-sysctl-NetworkAttachmentDefinition-tuning-cni.yml": dict(
        clean=True, not_=NOTHING, runs=[dict(**NAT, fire=["NAT001"])]
    ),
    "k8s/ocp-sysctl-cni-sysctl-allowlist-configmap.yml": dict(clean=True, nothing_set=True),
    "k8s/ocp-sysctl-example-safe-pod.yml": dict(
        fire=["TCP007"],
        not_=NOTHING + ["PORT003>=low", "SYS007"],
        runs=[
            dict(kubernetes_version="1.17", fire=["SYS007=medium"]),  # ping_group_range is safe from 1.18
            dict(kubernetes_version="1.18", not_=["SYS007"]),
        ],
    ),
    "k8s/ocp-sysctl-example-unsafe-pod.yml": dict(
        fire=["SYS007=medium"],
        not_=NOTHING,
        runs=[
            dict(kubernetes_version="1.28", fire=["SYS007=medium"]),  # + tcp_keepalive_time (safe from 1.29)
            dict(kernel=EL7, fire=["SYS007=medium"]),
        ],
    ),  # tcp_keepalive_time needs kernel 4.5
    "k8s/ocp-sysctl-pod-with-sysctls-container-level.yml": dict(
        fire=["SYS004=high"], not_=["SYS001", "SYS002", "SYS007"]
    ),
    "k8s/openshift-node-tuning-default-cr-tuned.yaml": dict(clean=True, nothing_set=True),
}
# proc/net captures and netstat/ss output are not configuration: lint finds no settings and says so. Their
# SOURCES verdicts are about counters and sockets (`tcpaudit audit` of a host), not about lint.
for _name in [
    "datadog-network-fixture-netstat-ant.txt",
    "datadog-network-fixture-ss-ipv4-tcp.txt",
    "elastic-beats-fixture-proc-net-stat-nf_conntrack.txt",
    "node_exporter-fixture-proc-net-netstat.txt",
    "node_exporter-fixture-proc-net-snmp.txt",
    "node_exporter-fixture-proc-net-sockstat-rhel4.txt",
    "node_exporter-fixture-proc-net-stat-nf_conntrack.txt",
    "node_exporter-fixture-proc-net-tcp.txt",
    "rhcos-4.18-el8-openshift-master-sosreport-netstat-s.txt",
]:
    TABLE[f"runtime/{_name}"] = dict(clean=True, nothing_set=True)


def corpus_files() -> list[str]:
    return sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCES.md")


def not_carried() -> set[str]:
    """The files SOURCES.md lists under "Not carried" (no licence allows redistributing them)."""
    text = (FIXTURE_CORPUS / "SOURCES.md").read_text()
    section = text.split("## Not carried", 1)[1]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


def _lint(rel: str, kernel: str | None = None, **context: Any) -> list[Target]:
    opts = AuditOptions(context=ContextOptions(**context))
    return lint_paths([CORPUS / rel], opts, kernel=kernel)


def _worst(targets: list[Target], rule: str) -> Severity | None:
    sevs = [f.severity for t in targets for f in t.findings if f.rule == rule]
    return max(sevs, key=lambda s: s.rank) if sevs else None


def _check(rel: str, targets: list[Target], fire: list[str], not_: list[str], label: str) -> list[str]:
    problems = []
    for spec in fire:
        rule, _, sev = spec.partition("=")
        worst = _worst(targets, rule)
        if worst is None:
            problems.append(f"{label}: {rule} must fire")
        elif sev and worst.value != sev:
            problems.append(f"{label}: {rule} must be {sev}, is {worst.value}")
    for spec in not_:
        rule, _, floor = spec.partition(">=")
        worst = _worst(targets, rule)
        if worst is not None and (not floor or worst.at_least(floor)):
            problems.append(f"{label}: {rule} must not fire{' at ' + floor + '+' if floor else ''} (is {worst.value})")
    return problems


def test_the_table_covers_the_corpus() -> None:
    """Every carried file has a row; every row is a carried file or one SOURCES.md lists as not carried."""
    files = set(corpus_files())
    absent = not_carried()
    assert files and not files & absent
    assert set(TABLE) == files | absent, {
        "no row": sorted(files | absent - set(TABLE)),
        "no file": sorted(set(TABLE) - files - absent),
    }


@pytest.mark.parametrize("rel", [rel for rel in sorted(TABLE) if (CORPUS / rel).is_file()])
def test_corpus_verdicts(rel: str) -> None:
    row = TABLE[rel]
    targets = _lint(rel)
    assert targets, "every file yields a target"
    problems = _check(rel, targets, row.get("fire", []), row.get("not_", []), "default")
    if row.get("clean"):
        located = [
            f"{f.rule}:{f.severity.value}"
            for t in targets
            for f in t.findings
            if f.location is not None and f.location.file.endswith(rel) and f.severity.at_least("low")
        ]
        if located:
            problems.append(f"clean file, but {located} point into it")
    if row.get("nothing_set"):
        assert all(any("no sysctl settings found" in c for c in t.context) for t in targets), targets[0].context
    for i, extra in enumerate(row.get("runs", []), 1):
        extra = dict(extra)
        fire, not_ = extra.pop("fire", []), extra.pop("not_", [])
        kernel = extra.pop("kernel", None)
        problems += _check(rel, _lint(rel, kernel, **extra), fire, not_, f"run {i} ({kernel or 'default'}, {extra})")
    for verdict in row.get("pending", []):
        warnings.warn(PendingVerdict(f"{rel}: {verdict}"), stacklevel=1)
    assert not problems, problems


def test_the_whole_corpus_through_the_cli() -> None:
    files = corpus_files()
    assert files
    for fmt in ("json", "sarif", "junit", "markdown", "table"):
        p = run("lint", *[str(CORPUS / f) for f in files], "--format", fmt)
        assert p.returncode in (0, 1), f"{fmt}: exit {p.returncode}: {p.stderr[-2000:]}"
        assert p.stdout and "internal error" not in p.stderr
