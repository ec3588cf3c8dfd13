"""The terminal formats: the table fits 80 and 160 columns (golden files with and without colour, from the shared
report, a fixture snapshot and a fleet view), --format concise, colour choices, suppressed findings, -q, lint's
quiet handling of files without sysctls, headline evidence, and the pre-commit hook's file filter.

Regenerate the golden files after an intended change: TCPAUDIT_REGEN_GOLDEN=1 pytest tests/test_table.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rich.cells import cell_len

from tcpaudit.audit import AuditOptions, audit_snapshot, build_report
from tcpaudit.fleet import fleet_view
from tcpaudit.loading import load_snapshot_file
from tcpaudit.model import Finding, Report, Severity, Target
from tcpaudit.reporters import render
from tcpaudit.reporters.table import headline_evidence

from .cli import ROOT, run
from .test_reporters import GOLDEN, REGEN, shared_report

SNAPSHOT = ROOT / "fixtures/snapshots/centos7-3.10.0-327-tw-recycle.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
WIDTHS = (80, 160)


def widest(text: str) -> int:
    return max((cell_len(line) for line in ANSI.sub("", text).split("\n")), default=0)


def snapshot_report() -> Report:
    t = audit_snapshot(load_snapshot_file(SNAPSHOT), AuditOptions())
    report = build_report([t], "high")
    report.tool.version = "0.0.0-golden"
    return report


def fleet_report() -> Report:
    snap = load_snapshot_file(SNAPSHOT)
    targets = [audit_snapshot(snap, AuditOptions(), name=n) for n in ("web-1.example.com", "web-2.example.com")]
    report = build_report(targets, "high")
    sysctls = {t.name: dict(t.sysctls) for t in targets}
    sysctls["web-2.example.com"]["net.ipv4.tcp_keepalive_time"] = "600"
    report.extra["fleet"] = fleet_view(targets, sysctls, {t.name: "web" for t in targets})
    return report


REPORTS = {"shared": shared_report, "host": snapshot_report, "fleet": fleet_report}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"{path.name} did not exist and was written; check it in")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; TCPAUDIT_REGEN_GOLDEN=1 if intended"


@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", sorted(REPORTS))
def test_table_golden_fits_the_width(which: str, width: int, color: bool) -> None:
    for verbose in (False, True):
        text = render(REPORTS[which](), "table", verbose=verbose, width=width, color=color)
        assert widest(text) <= width
        assert ("\x1b[" in text) is color  # escape codes only when colour is on
        assert ANSI.sub("", text).isprintable() or "\n" in text
        suffix = f"{'-v' if verbose else ''}{'-color' if color else ''}"
        check_golden(f"table-{which}-{width}{suffix}.txt", text)


def test_colour_changes_nothing_but_escape_codes() -> None:
    for width in WIDTHS:
        plain = render(shared_report(), "table", width=width)
        colored = render(shared_report(), "table", width=width, color=True)
        assert ANSI.sub("", colored) == plain


def test_summary_says_what_was_checked() -> None:
    text = render(shared_report(), "table", width=160)
    # the config target: 1 pass, 5 fail, 1 not applicable, 1 error; the host: unknown CT002 with its reason
    assert "checked 8 rules: 1 pass, 5 fail, 1 not applicable, 1 error" in text
    assert "checked 5 rules: 1 pass, 2 fail, 1 not applicable, 1 unknown" in text
    assert "unknown: CT002: NAT rules not readable (needs root)" in text
    assert "error: PORT999: ZeroDivisionError" in text
    assert "not run on host targets" not in text  # not applicable: only with -v
    verbose = render(shared_report(), "table", width=160, verbose=True)
    assert "not applicable: SYS001: not run on host targets" in verbose
    assert "not applicable: NAT001: no NAT idle timeout known" in verbose


def test_suppressed_findings_are_hidden_and_counted() -> None:
    text = render(shared_report(), "table", width=160)
    assert "TCP001 (critical, suppressed)" not in text and "el7 image" not in text
    assert "3 suppressed finding(s) hidden (1 baseline, 1 inline, 1 waiver; --show-suppressed)" in text
    assert "3 suppressed (hidden: --show-suppressed)" in text
    shown = render(shared_report(), "table", width=160, show_suppressed=True)
    assert "TCP001 (critical, suppressed)" in shown and "waiver: el7 image, retired in Q3" in shown
    concise = render(shared_report(), "concise")
    assert "TCP001" not in concise.split("web-1")[0]
    assert "(suppressed, waiver: el7 image" in render(shared_report(), "concise", show_suppressed=True)


def test_quiet_is_findings_and_the_summary_line() -> None:
    text = render(shared_report(), "table", width=160, quiet=True)
    assert "target kernel 5.15.0" not in text and "checked " not in text and "not collected" not in text
    assert "SYS001" in text and "TCP001" in text
    assert text.rstrip().splitlines()[-1].startswith("3 target(s), 2 audited, 1 failed")


def test_concise_is_one_finding_per_line_location_first() -> None:
    lines = render(shared_report(), "concise").splitlines()
    assert "rootfs/etc/sysctl.d/60-net.conf:3: SYS001 high sysctl key does not exist on the target kernel" in "\n".join(
        lines
    )
    fix = [x for x in lines if ": TCP001 critical" in x]
    assert len(fix) == 1 and fix[0].endswith("(fix: net.ipv4.tcp_tw_recycle = 0)")
    assert all("\x1b" not in x for x in lines)  # the hostile host name is escaped, and no colour by default
    assert lines[-1].startswith("3 target(s)")


def test_headline_evidence_leaves_out_internal_keys() -> None:
    f = Finding(
        rule="NAT002",
        severity=Severity.high,
        title="idle connections without keepalive",
        evidence={
            "idle_connections": 3,
            "nat_idle_timeout": 350,
            "nat_idle_timeout_source": "auto-detected cloud aws",
            "tcp_keepalive_time_origin": "host",
            "socket_detail": "ss-i",
            "examples": ["10.0.0.2:40000 -> 10.9.0.1:443 idle 900 s (no keepalive)"],
            "stats": {"a": 1},
            "TCPChallengeACK": {"total_since_boot": 140},
        },
    )
    lines = headline_evidence(f)
    text = "\n".join(lines)
    assert "idle_connections=3" in text and "nat_idle_timeout=350" in text
    assert "e.g. 10.0.0.2:40000 -> 10.9.0.1:443 idle 900 s (no keepalive)" in text
    assert "_origin" not in text and "_source" not in text and "socket_detail" not in text and "stats" not in text
    t = Target(name="h", kind="host", findings=[f])
    verbose = render(build_report([t]), "table", verbose=True, width=120)
    assert "socket_detail = ss-i" in verbose and "tcp_keepalive_time_origin = host" in verbose


def test_colour_choices_on_the_cli() -> None:
    def colored(*args: str, **env: str) -> bool:
        p = run("rules", *args, env={"NO_COLOR": "", "FORCE_COLOR": "", **env})
        assert p.returncode == 0, p.stderr
        return "\x1b[" in p.stdout

    assert not colored()  # a pipe: no escape codes
    assert colored(FORCE_COLOR="1")
    assert not colored(FORCE_COLOR="1", NO_COLOR="1")
    assert colored("--color", "always", NO_COLOR="1")
    assert not colored("--color", "never", FORCE_COLOR="1")
    bad = run("rules", "--color", "sometimes")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_lint_is_silent_on_files_without_sysctls(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"values-{i}.yaml").write_text("replicas: 3\nimage: nginx\n")
    (tmp_path / "sysctl.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")
    files = [str(p) for p in sorted(tmp_path.iterdir())]
    p = run("lint", *files, "--kernel", "5.15.0", env={"COLUMNS": "100"})
    assert "values-0.yaml" not in p.stdout
    assert "4 file(s) without sysctl settings: nothing to check" in p.stdout
    assert "SYS001 HIGH" in p.stdout
    assert "every target:" in p.stdout and p.stdout.count("clients behind NAT") == 1  # said once, not per file
    quiet = run("lint", *files, "--kernel", "5.15.0", "-q")
    assert "context" not in quiet.stdout and "without sysctl settings" not in quiet.stdout and "SYS001" in quiet.stdout
    concise = run("lint", *files, "--kernel", "5.15.0", "--format", "concise")
    assert concise.stdout.splitlines()[0].startswith(f"{tmp_path}/sysctl.conf:1: SYS001 high ")


def test_pre_commit_hook_only_takes_files_that_can_hold_sysctls() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])

    def taken(path: str) -> bool:  # pre-commit: re.search on files, minus exclude
        return bool(files.search(path)) and not exclude.search(path)

    for path in (
        "etc/sysctl.conf",
        "rootfs/etc/sysctl.d/60-net.conf",
        "k8s/pod.yaml",
        "roles/net/tasks/main.yml",
        "docker-compose.yml",
        "notes/sysctl-tuning.md",
        "tuned/throughput/tuned.conf",
        "deploy/patch.json",
        "scripts/apply-sysctls.sh",
    ):
        assert taken(path), path
    for path in (
        "README.md",
        "src/app.py",
        "package.json",
        "web/package-lock.json",
        ".github/workflows/ci.yml",
        ".pre-commit-config.yaml",
        ".gitlab-ci.yml",
        "etc/nginx.conf",
        "data/fixtures.json",
    ):
        assert not taken(path), path


def test_headline_fields_are_evidence_the_rule_gives() -> None:
    from tcpaudit.catalogue import metas
    from tcpaudit.rules.engine import catalogue, run_rules

    from .rulecases import build_case, load_cases

    given: dict[str, set[str]] = {}
    for rule, _name, case in load_cases():
        if case.get("expect") == "fail":
            findings, _ = run_rules(build_case(case), "case", rules=[r for r in catalogue() if r.meta.id == rule])
            for f in findings:
                given.setdefault(rule, set()).update(f.evidence)
    chosen = {m.id: m.headline for m in metas() if m.headline}
    assert "NAT002" in chosen  # the idle sockets it found are what the table shows
    for rule, keys in chosen.items():
        assert set(keys) <= given.get(rule, set()), (rule, set(keys) - given.get(rule, set()))


def test_namespace_notes_are_one_short_line_said_once() -> None:
    from tcpaudit.rules.base import GLOBAL_SYSCTL_HIDDEN

    def ns(name: str) -> Target:
        return Target(
            name=name,
            kind="netns",
            kernel_notes=[
                f"net.ipv4.{k} is absent on this host although upstream 6.1.0 has it ({GLOBAL_SYSCTL_HIDDEN}; read "
                "it on the host); the host's answer is used"
                for k in ("tcp_mem", "tcp_max_orphans")
            ],
        )

    one = render(build_report([ns("a")]), "table", width=200)
    assert one.count("global sysctl(s)") == 1 and "net.ipv4.tcp_mem, net.ipv4.tcp_max_orphans" in one
    assert GLOBAL_SYSCTL_HIDDEN not in one
    two = render(build_report([ns("a"), ns("b")]), "table", width=200)
    assert two.count("global sysctl(s)") == 1 and two.startswith("every target:")


README = ROOT / "README.md"
README_OUTPUT = re.compile(r"<!-- output: (?P<cmd>[^\n]*?) -->\n```text\n(?P<text>.*?)```\n", re.S)


def test_readme_examples_are_real_output() -> None:
    """Each `<!-- output: [COLUMNS=N] tcpaudit ARGS -->` block of the README is what that command prints (from
    fixtures, so it is deterministic); TCPAUDIT_REGEN_GOLDEN=1 rewrites them."""
    readme = README.read_text(encoding="utf-8")
    blocks = list(README_OUTPUT.finditer(readme))
    assert len(blocks) >= 2

    def output(m: re.Match[str]) -> str:
        words = m.group("cmd").split()
        env = {"COLUMNS": words.pop(0).split("=", 1)[1]} if words[0].startswith("COLUMNS=") else {"COLUMNS": "100"}
        assert words[0] == "tcpaudit"
        p = run(*words[1:], env={**env, "NO_COLOR": "1", "FORCE_COLOR": ""})
        assert p.returncode in (0, 1), p.stderr
        return p.stdout

    if REGEN:
        README.write_text(
            README_OUTPUT.sub(lambda m: f"<!-- output: {m.group('cmd')} -->\n```text\n{output(m)}```\n", readme),
            encoding="utf-8",
        )
        return
    for m in blocks:
        assert m.group("text") == output(m), f"README block for `{m.group('cmd')}` is stale: TCPAUDIT_REGEN_GOLDEN=1"


def test_an_expired_waiver_is_shown_with_its_finding() -> None:
    f = Finding(
        rule="SYS001",
        severity=Severity.high,
        title="sysctl key does not exist on the target kernel",
        evidence={"key": "net.ipv4.tcp_tw_recycle", "waiver": "waiver expired on 2020-01-31 (reason was: el7)"},
    )
    text = render(build_report([Target(name="rootfs", kind="config", findings=[f])]), "table", width=100)
    assert "SYS001 HIGH" in text and "waiver: waiver expired on 2020-01-31 (reason was: el7)" in text
    assert "suppressed" not in text


CLI_GOLDENS = {"kernel": ("kernel", "5.4.0"), "kernel-v": ("kernel", "5.4.0", "-v"), "rules": ("rules",)}


@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", sorted(CLI_GOLDENS))
def test_kernel_and_rules_golden_fit_the_width(which: str, width: int, color: bool) -> None:
    """`tcpaudit kernel` and `rules` from the real CLI (their input is the knowledge base and the catalogue, not
    this machine), at both widths, with and without colour."""
    p = run(*CLI_GOLDENS[which], "--color", "always" if color else "never", env={"COLUMNS": str(width)})
    assert p.returncode == 0, p.stderr
    assert widest(p.stdout) <= width
    if not color:
        assert "\x1b[" not in p.stdout  # `kernel` has no colour yet; `rules` colours the severity
    else:
        assert ("\x1b[" in p.stdout) is (which == "rules")
    check_golden(f"cli-{which}-{width}{'-color' if color else ''}.txt", p.stdout)


def test_verbose_adds_the_rules_mechanism_from_the_catalogue() -> None:
    from tcpaudit.catalogue import meta_for

    report = snapshot_report()
    text = " ".join(render(report, "table", verbose=True, width=160, color=False).split())
    plain = " ".join(render(report, "table", width=160, color=False).split())
    assert report.targets[0].findings
    for f in report.targets[0].findings:
        first = meta_for(f.rule).mechanism[0]
        assert f"1. {first}" in text
        assert f"1. {first}" not in plain
