"""The config parsers: every format `tcpaudit lint` reads, with file and line for every assignment."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpaudit.lint import lint_units, parse_text
from tcpaudit.lint.keys import normalize_key
from tcpaudit.lint.shell import parse_script


def one(text: str, name: str = "x.conf"):  # type: ignore[no-untyped-def]
    (unit,) = parse_text(textwrap.dedent(text), name)
    return unit


def kv(unit) -> list[tuple[str, str | None, int | None]]:  # type: ignore[no-untyped-def]
    return [(a.key, a.value, a.location.line) for a in unit.assignments]


# ---- sysctl.conf / sysctl.d ------------------------------------------------------------------
def test_sysctl_conf_basics() -> None:
    u = one("""\
        # comment
        ; also a comment

        net.ipv4.tcp_fin_timeout=30
          net.core.somaxconn =   4096
        net/ipv4/conf/eth0.100/rp_filter = 2
        net.ipv4.conf.eth0/100.forwarding = 1
        kernel.core_pattern = |/usr/bin/x %p = y
        """)
    assert kv(u) == [
        ("net.ipv4.tcp_fin_timeout", "30", 4),
        ("net.core.somaxconn", "4096", 5),
        ("net.ipv4.conf.eth0/100.rp_filter", "2", 6),
        ("net.ipv4.conf.eth0/100.forwarding", "1", 7),
        ("kernel.core_pattern", "|/usr/bin/x %p = y", 8),  # everything after the first '=' is the value
    ]
    assert not u.problems


def test_trailing_comment_stays_in_the_value() -> None:
    u = one("net.ipv4.tcp_keepalive_time = 300 # five minutes\n")
    assert kv(u) == [("net.ipv4.tcp_keepalive_time", "300 # five minutes", 1)]


def test_crlf_and_missing_final_newline() -> None:
    u = one("net.ipv4.tcp_fin_timeout = 30\r\nnet.core.somaxconn = 1024")
    assert kv(u) == [("net.ipv4.tcp_fin_timeout", "30", 1), ("net.core.somaxconn", "1024", 2)]


def test_dash_prefix_and_glob_exclusion() -> None:
    u = one("""\
        -net.ipv4.ping_group_range = 0 2147483647
        net.ipv4.conf.*.rp_filter = 2
        -net.ipv4.conf.lo.rp_filter
        """)
    a, g, x = u.assignments
    assert (a.key, a.ignore_errors, a.value) == ("net.ipv4.ping_group_range", True, "0 2147483647")
    assert g.is_glob and g.value == "2"
    assert x.value is None and x.key == "net.ipv4.conf.lo.rp_filter"


def test_strict_problems_in_conf_files() -> None:
    u = one("""\
        net.ipv4.tcp_fin_timeout 30
        net.core.somaxconn =
        sysctl -w net.ipv4.tcp_syn_retries=3
        """)
    # an empty value is written (procps 4.0+, systemd-sysctl): an assignment SYS002 judges, not a skipped line
    assert [(a.key, a.value) for a in u.assignments] == [("net.core.somaxconn", "")]
    assert [p.location.line for p in u.problems] == [1, 3]
    assert all(p.kind == "syntax" for p in u.problems)


@pytest.mark.parametrize(
    "raw,key",
    [
        ("net.ipv4.tcp_sack", "net.ipv4.tcp_sack"),
        ("net/ipv4/tcp_sack", "net.ipv4.tcp_sack"),
        ("net/ipv4/conf/enp3s0.200/forwarding", "net.ipv4.conf.enp3s0/200.forwarding"),
        ("net.ipv4.conf.enp3s0/200.forwarding", "net.ipv4.conf.enp3s0/200.forwarding"),
    ],
)
def test_key_separators_per_sysctl_d(raw: str, key: str) -> None:
    assert normalize_key(raw) == key


# ---- shell -------------------------------------------------------------------------------------
def test_sysctl_w_list_with_quotes() -> None:
    u = one(
        """\
        sysctl -w net.ipv4.ip_local_port_range="1025       65535"
        sysctl -w net.ipv4.tcp_mem='80000000 80000000 80000000'
        sudo sysctl -e -w net.ipv4.tcp_tw_recycle=1 net.ipv4.tcp_sack=0
        echo 1 > /proc/sys/net/ipv4/tcp_timestamps
        ulimit -n 9999999""",
        name="sysctl.txt",
    )
    assert kv(u) == [
        ("net.ipv4.ip_local_port_range", "1025       65535", 1),
        ("net.ipv4.tcp_mem", "80000000 80000000 80000000", 2),
        ("net.ipv4.tcp_tw_recycle", "1", 3),
        ("net.ipv4.tcp_sack", "0", 3),
        ("net.ipv4.tcp_timestamps", "1", 4),
    ]
    assert u.assignments[2].ignore_errors


def test_unquoted_value_is_split_by_the_shell() -> None:
    a, p = parse_script("sysctl -w net.core.somaxconn=32768; sysctl -w net.ipv4.ip_local_port_range=32767 65535", "cmd")
    assert [(x.key, x.value) for x in a] == [("net.core.somaxconn", "32768"), ("net.ipv4.ip_local_port_range", "32767")]
    assert a[1].note and "'65535'" in a[1].note and not p


# ---- Markdown, tuned ---------------------------------------------------------------------------
def test_markdown_fences_and_bare_lines() -> None:
    u = one(
        """\
        # Tuning
        Some prose = not a key.
        ``` bash
        net.ipv4.tcp_max_tw_buckets = 5000
        # sysctl -p to use configs above
        ```
        net.netfilter.nf_conntrack_tcp_be_liberal = 1
        $ sudo sysctl -w net.ipv4.tcp_syn_retries=2
        """,
        name="notes.md",
    )
    assert kv(u) == [
        ("net.ipv4.tcp_max_tw_buckets", "5000", 4),
        ("net.netfilter.nf_conntrack_tcp_be_liberal", "1", 7),
        ("net.ipv4.tcp_syn_retries", "2", 8),
    ]


def test_tuned_reads_only_the_sysctl_section() -> None:
    u = one(
        """\
        [main]
        include=latency-performance
        [vm]
        transparent_hugepages=never
        [sysctl]
        net.core.busy_read=50
        kernel.numa_balancing = 0 # inline comments are stripped by tuned
        [bootloader]
        cmdline=skew_tick=1
        """,
        name="tuned.conf",
    )
    assert kv(u) == [("net.core.busy_read", "50", 6), ("kernel.numa_balancing", "0", 7)]
    assert any("includes latency-performance" in n for n in u.notes)


# ---- YAML / JSON -------------------------------------------------------------------------------
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  securityContext:
    sysctls:
    - name: net.ipv4.tcp_keepalive_time
      value: "600"
  initContainers:
  - name: tune
    image: busybox
    command: ["sh", "-c", "sysctl -w net.core.somaxconn=4096"]
  - name: exec-form
    image: busybox
    command: ["sysctl", "-w", "net.ipv4.tcp_fin_timeout=30"]
  containers:
  - name: app
    image: nginx
    securityContext:
      sysctls:
      - name: net.ipv4.tcp_keepalive_intvl
        value: "10"
"""


def test_kubernetes_pod() -> None:
    u = one(POD, "pod.yaml")
    assert u.name == "pod.yaml#Pod/web"
    assert kv(u) == [
        ("net.ipv4.tcp_keepalive_time", "600", 8),
        ("net.core.somaxconn", "4096", 13),
        ("net.ipv4.tcp_fin_timeout", "30", 16),
    ]
    (p,) = u.problems
    assert p.kind == "placement" and p.location.line == 21 and p.keys == ("net.ipv4.tcp_keepalive_intvl",)


def test_workloads_multi_document() -> None:
    text = textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          template:
            spec:
              securityContext:
                sysctls: [{name: net.ipv4.ip_local_port_range, value: "32768 60999"}]
              containers: [{name: api, image: x}]
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: nightly}
        spec:
          jobTemplate:
            spec:
              template:
                spec:
                  initContainers:
                  - name: t
                    image: busybox
                    args:
                    - |
                      set -e
                      sysctl -w net.ipv4.tcp_syn_retries=3
                  containers: [{name: job, image: x}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: unrelated}
        data: {a: b}
        """)
    units = parse_text(text, "all.yaml")
    assert [u.name for u in units] == ["all.yaml#Deployment/api", "all.yaml#CronJob/nightly"]
    assert kv(units[0]) == [("net.ipv4.ip_local_port_range", "32768 60999", 8)]
    assert kv(units[1]) == [("net.ipv4.tcp_syn_retries", "3", 25)]


def test_docker_compose_list_and_mapping() -> None:
    text = textwrap.dedent("""\
        services:
          a:
            image: x
            sysctls:
              - net.core.somaxconn=1024
              - net.ipv4.tcp_syncookies=0
          b:
            image: y
            sysctls:
              net.ipv4.ip_local_port_range: "1024 65000"
          c:
            image: z
        """)
    units = parse_text(text, "docker-compose.yml")
    assert [u.name for u in units] == ["docker-compose.yml#services.a", "docker-compose.yml#services.b"]
    assert kv(units[0]) == [("net.core.somaxconn", "1024", 5), ("net.ipv4.tcp_syncookies", "0", 6)]
    assert kv(units[1]) == [("net.ipv4.ip_local_port_range", "1024 65000", 10)]


def test_ansible_dict_and_tasks() -> None:
    text = textwrap.dedent("""\
        sysctl_config:
          net.ipv4.tcp_timestamps: 0
          fs.suid_dumpable: 0
        tasks:
          - name: keepalive
            ansible.posix.sysctl:
              name: net.ipv4.tcp_keepalive_time
              value: "{{ keepalive }}"
          - name: raw
            shell: sysctl -w net.ipv4.tcp_fin_timeout=20
        """)
    u = one(text, "main.yml")
    assert kv(u) == [
        ("net.ipv4.tcp_timestamps", "0", 2),
        ("fs.suid_dumpable", "0", 3),
        ("net.ipv4.tcp_keepalive_time", "{{ keepalive }}", 7),
        ("net.ipv4.tcp_fin_timeout", "20", 10),
    ]
    assert u.assignments[2].templated


def test_json_patch_with_tabs() -> None:
    text = (
        '{\n\t"spec": {"template": {"spec": {"initContainers": [{\n\t\t"name": "s",\n\t\t"command": ["sh", "-c", '
        '"sysctl -w net.core.somaxconn=32768"]\n\t}]}}}\n}\n'
    )
    u = one(text, "patch.json")
    assert kv(u) == [("net.core.somaxconn", "32768", 4)]


def test_invalid_yaml_falls_back_to_text() -> None:
    u = one(
        '{{- define "x" }}\n  command: ["sh", "-c", "sysctl -w net.ipv4.tcp_syn_retries=1"]\n{{- end }}\nbad: [\n',
        "x.yaml",
    )
    assert kv(u) == [("net.ipv4.tcp_syn_retries", "1", 2)]
    assert any("not valid YAML" in n for n in u.notes)


def test_yaml_alias_bomb_is_walked_once() -> None:
    lines = (
        ["a: &a [net.core.somaxconn=1]"]
        + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}]" for p, c in zip("abcdefgh", "bcdefghi", strict=False)]
        + ["sysctls: *i"]
    )
    (u,) = parse_text("\n".join(lines) + "\n", "bomb.yml")
    assert len(u.assignments) <= 1


# ---- inline ignores ----------------------------------------------------------------------------
def test_inline_ignore_directives() -> None:
    u = one("""\
        # tcpaudit: ignore[SYS001] kept for the el7 hosts until they are gone
        net.ipv4.tcp_tw_recycle = 0
        net.ipv4.tcp_fin_timeout = 30 # tcpaudit: ignore[TCP004,SYS002] measured, see INC-42
        # tcpaudit: ignore[TCP004]
        net.ipv4.tcp_fin_timeout = 20
        """)
    first, second = u.ignores
    assert first.rules == {"SYS001"} and first.location.line == 2 and first.directive.line == 1
    assert second.rules == {"TCP004", "SYS002"} and second.location.line == 3
    assert any("has no reason" in n for n in u.notes)


# ---- never crash ---------------------------------------------------------------------------------

_LINES = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda k, v: f"{k} = {v}",
            st.sampled_from(
                [
                    "net.ipv4.tcp_fin_timeout",
                    "-net.core.somaxconn",
                    "net/ipv4/conf/a.b/rp_filter",
                    "net.ipv4.conf.*.x",
                    "k",
                ]
            ),
            st.text(max_size=20),
        ),
        st.builds(lambda v: f"sysctl -w net.ipv4.ip_local_port_range={v}", st.text(max_size=20)),
        st.sampled_from(
            [
                "[sysctl]",
                "```",
                "---",
                "- name: x",
                "  sysctls:",
                "{",
                "}",
                "# tcpaudit: ignore[SYS001] r",
                "spec:",
                "  containers: []",
                '\t"a": 1,',
                "{{- end }}",
            ]
        ),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=_LINES,
    name=st.sampled_from(["a.conf", "a.yaml", "a.json", "a.md", "a.txt", "tuned.conf", "a.tpl"]),
    crlf=st.booleans(),
)
def test_parsers_never_crash(lines: list[str], name: str, crlf: bool) -> None:
    text = ("\r\n" if crlf else "\n").join(lines)
    units = parse_text(text, name)
    assert units
    for t in lint_units(units, kernel="5.15.0"):
        assert all(c.outcome.value != "error" for c in t.checks), [c.reason for c in t.checks]


# ---- misspelled keys ---------------------------------------------------------------------------
def _real_keys() -> set[str]:
    """Every key of the real `sysctl -a` captures of fixtures/corpus (3.10, 4.14, 4.18) and of this host."""
    import os
    import re
    from pathlib import Path

    keys: set[str] = set()
    for dump in (Path(__file__).resolve().parents[1] / "fixtures/corpus/sysctl-dump").glob("*"):
        for line in dump.read_text(errors="replace").splitlines():
            m = re.match(r"^([A-Za-z0-9_./:-]+)\s*=", line)
            if m:
                keys.add(m.group(1))
    for dirpath, _, files in os.walk("/proc/sys/net"):
        keys.update(os.path.join(dirpath, f)[len("/proc/sys/") :].replace("/", ".") for f in files)
    return keys


def test_no_real_key_is_taken_for_a_misspelling() -> None:
    from tcpaudit.kernel.db import load_kernel_db
    from tcpaudit.lint.values import likely_misspelling

    kdb, keys = load_kernel_db(), _real_keys()
    assert len(keys) > 500, "the corpus captures and /proc/sys/net give hundreds of real keys"
    assert {k: m for k in keys if (m := likely_misspelling(kdb, k))} == {}


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("net.ipv4.tcp_keepalive_intval", "net.ipv4.tcp_keepalive_intvl"),
        ("net.ipv4.tcp_keepalive_itnvl", "net.ipv4.tcp_keepalive_intvl"),
        ("net.ipv4.tcp_keepaliveintvl", "net.ipv4.tcp_keepalive_intvl"),
        ("net.ipv4.tcp-keepalive-time", "net.ipv4.tcp_keepalive_time"),
        ("net.core.somaxcon", "net.core.somaxconn"),
        ("net.ipv4.tcp_fin_timout", "net.ipv4.tcp_fin_timeout"),
        ("net.ipv4.tcp_max_tw_bucket", "net.ipv4.tcp_max_tw_buckets"),
        ("net.netfilter.nf_conntrack_tcp_timeout_establised", "net.netfilter.nf_conntrack_tcp_timeout_established"),
        ("net.ipv4.TCP_SACK", "net.ipv4.tcp_sack"),
        # not typos: real keys next to known ones, other trees, other directories, digits, whole tokens
        ("net.ipv4.tcp_fack", None),
        ("net.ipv4.tcp_retries1", None),
        ("net.ipv4.tcp_retries3", None),
        ("net.ipv4.udp_mem", None),
        ("net.netfilter.nf_conntrack_acct", None),
        ("net.netfilter.nf_conntrack_tcp_timeout_close", None),
        ("net.ipv4.conf.all.rp_filter", None),
        ("net.ipv4.neigh.default.gc_thresh1", None),
        ("fs.file-max", None),
        ("vm.swappiness", None),
        ("net.bridge.bridge-nf-call-iptables", None),
        ("net.ipv4.tcp_keepalive_*", None),
        ("net.ipv4.tcp_keepalive_intvl", None),  # known: SYS001 judges it
    ],
)
def test_likely_misspelling(typed: str, meant: str | None) -> None:
    from tcpaudit.kernel.db import load_kernel_db
    from tcpaudit.lint.values import likely_misspelling

    assert likely_misspelling(load_kernel_db(), typed) == meant


def test_misspellings_are_not_looked_for_in_sysctl_a_captures() -> None:
    capture = "kernel.osrelease = 5.15.0-91-generic\nnet.ipv4.tcp_keepalive_intval = 75\n"
    (t,) = lint_units(parse_text(capture, "dump.txt"))
    assert not [f for f in t.findings if f.rule == "SYS004"]
    (t,) = lint_units(parse_text("net.ipv4.tcp_keepalive_intval = 75\n-net.ipv4.tcp_keepalive_intval = 75\n", "a.conf"))
    (f,) = [f for f in t.findings if f.rule == "SYS001"]  # a misspelt key is SYS001 (issue 16)
    assert f.evidence["set_at"] == ["a.conf:1", "a.conf:2"], "one finding per key and file"
