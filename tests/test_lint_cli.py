"""Acceptance for issue 7 through the real CLI (`python -m tcpaudit`): lint, gating, waivers, baselines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import junitparser

from .cli import ROOT, run

TW = "net.ipv4.tcp_tw_recycle"


def tree(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "rootfs"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def lint_json(*args: str, cwd: Path | None = None) -> tuple[int, dict, str]:
    p = run("lint", *args, "--format", "json", cwd=cwd)
    assert p.returncode in (0, 1), f"exit {p.returncode}: {p.stderr}"
    return p.returncode, json.loads(p.stdout), p.stderr


def findings(report: dict, rule: str | None = None) -> list[dict]:
    return [f for t in report["targets"] for f in t["findings"] if rule is None or f["rule"] == rule]


RECYCLE_TREE = {"etc/sysctl.d/60-net.conf": f"# copied from the el7 image\nnet.ipv4.tcp_timestamps = 1\n{TW} = 1\n"}


def test_removed_key_on_5_15_fails_with_file_and_line(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0")
    assert rc == 1
    (t,) = report["targets"]
    assert t["kind"] == "config" and t["kernel"]["release"] == "5.15.0"
    (f,) = findings(report, "SYS001")
    assert f["severity"] == "high" and f["keys"] == [TW]
    assert f["location"] == {"file": f"{root}/etc/sysctl.d/60-net.conf", "line": 3}
    assert "does not exist on Linux 5.15.0" in f["explanation"]
    assert not findings(report, "TCP001"), "a key the kernel does not have cannot drop SYNs"


def test_same_tree_on_el7_with_nat_clients_is_critical(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    rc, report, _ = lint_json("--root", str(root), "--kernel", "3.10.0-1160.el7.x86_64", "--clients-behind-nat", "yes")
    assert rc == 1
    (f,) = findings(report, "TCP001")
    assert f["severity"] == "critical"
    assert f["location"]["line"] == 3
    assert not findings(report, "SYS001")


def test_override_in_etc_is_judged_and_located(tmp_path: Path) -> None:
    root = tree(
        tmp_path, {"usr/lib/sysctl.d/50-vendor.conf": f"{TW} = 0\n", "etc/sysctl.d/90-local.conf": f"\n{TW} = 1\n"}
    )
    rc, report, _ = lint_json("--root", str(root), "--kernel", "3.10.0-1160.el7.x86_64", "--clients-behind-nat", "yes")
    (f,) = findings(report, "TCP001")
    assert f["location"] == {"file": f"{root}/etc/sysctl.d/90-local.conf", "line": 2}
    assert rc == 1
    # and the other way round: the vendor file sorts later, so it wins and nothing fires
    root2 = tree(
        tmp_path / "b", {"usr/lib/sysctl.d/95-vendor.conf": f"{TW} = 0\n", "etc/sysctl.d/90-local.conf": f"{TW} = 1\n"}
    )
    _, report2, _ = lint_json("--root", str(root2), "--kernel", "3.10.0-1160.el7.x86_64")
    assert not findings(report2, "TCP001")
    # a same-named file in /etc hides the vendor file completely
    root3 = tree(
        tmp_path / "c", {"usr/lib/sysctl.d/50-net.conf": f"{TW} = 1\n", "etc/sysctl.d/50-net.conf": f"{TW} = 0\n"}
    )
    _, report3, _ = lint_json("--root", str(root3), "--kernel", "3.10.0-1160.el7.x86_64")
    assert not findings(report3, "TCP001") and not findings(report3, "SYS003")


def test_default_kernel_is_stated_in_the_context(tmp_path: Path) -> None:
    conf = tmp_path / "99-net.conf"
    conf.write_text("net.ipv4.tcp_keepalive_time = 300 # five minutes\n")
    rc, report, _ = lint_json(str(conf))
    (t,) = report["targets"]
    assert any("default: a current kernel" in c for c in t["context"])
    (f,) = findings(report, "SYS002")  # a low style note: 300 applies on a current kernel
    assert f["location"] == {"file": str(conf), "line": 1} and f["severity"] == "low" and rc == 0


WAIVER_TOML = """\
[[waiver]]
rule = "SYS001"
target = "*rootfs"
reason = "el7 hosts still boot this image until Q3"
expires = {date}
"""


def test_waivers_suppress_until_they_expire(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    cfg = tmp_path / "tcpaudit.toml"
    cfg.write_text(WAIVER_TOML.format(date="2099-12-31"))
    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0", "--config", str(cfg))
    (f,) = findings(report, "SYS001")
    assert f["suppressed"]["kind"] == "waiver" and f["suppressed"]["expires"] == "2099-12-31"
    assert rc == 0 and report["summary"]["suppressed"] >= 1
    table = run("lint", "--root", str(root), "--kernel", "5.15.0", "--config", str(cfg))
    assert "(high, suppressed)" not in table.stdout and "suppressed finding(s) hidden (1 waiver" in table.stdout
    table = run("lint", "--root", str(root), "--kernel", "5.15.0", "--config", str(cfg), "--show-suppressed")
    assert "(high, suppressed)" in table.stdout

    cfg.write_text(WAIVER_TOML.format(date="2020-01-31"))
    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0", "--config", str(cfg))
    (f,) = findings(report, "SYS001")
    assert f["suppressed"] is None and rc == 1
    assert "waiver expired on 2020-01-31" in f["evidence"]["waiver"]
    assert "expired on 2020-01-31" in f["explanation"]


def test_waiver_from_the_working_directory_config(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    (tmp_path / ".tcpaudit.toml").write_text(WAIVER_TOML.format(date="2099-01-01"))
    rc, report, _ = lint_json("--root", "rootfs", "--kernel", "5.15.0", cwd=tmp_path)
    assert rc == 0 and findings(report, "SYS001")[0]["suppressed"]["kind"] == "waiver"
    assert root.exists()


def test_baseline_lets_only_new_findings_fail(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    base = tmp_path / "baseline.json"
    p = run("baseline", "-o", str(base), "--root", str(root), "--kernel", "5.15.0")
    assert p.returncode == 0, p.stderr
    recorded = json.loads(base.read_text())
    assert recorded["version"] == 1 and any(e["rule"] == "SYS001" for e in recorded["fingerprints"].values())

    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0", "--baseline", str(base))
    assert rc == 0
    assert {f["suppressed"]["kind"] for f in findings(report)} == {"baseline"}

    # a new problem in a new line still fails, the old one stays suppressed even though its line moved
    (root / "etc/sysctl.d/60-net.conf").write_text(
        f'# moved down\n\nnet.ipv4.tcp_timestamps = 1\n{TW} = 1\nnet.ipv4.tcp_keepalive_time = "300"\n'
    )
    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0", "--baseline", str(base))
    assert rc == 1
    new = [f for f in findings(report) if f["suppressed"] is None]
    assert [f["rule"] for f in new] == ["SYS002"]
    assert findings(report, "SYS001")[0]["suppressed"]["kind"] == "baseline"


def test_baseline_for_snapshots_and_audit(tmp_path: Path) -> None:
    snap = ROOT / "fixtures/snapshots/centos7-3.10.0-327-tw-recycle.json"
    base = tmp_path / "b.json"
    assert run("baseline", "-o", str(base), str(snap)).returncode == 0
    p = run("audit", str(snap), "--baseline", str(base), "--format", "json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert findings(report) and all(f["suppressed"]["kind"] == "baseline" for f in findings(report))


def test_inline_ignore_in_a_sysctl_file(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "etc/sysctl.d/60-net.conf": (
                f"# tcpaudit: ignore[SYS001] removed once the el7 fleet is gone (INC-7)\n{TW} = 0\n"
            )
        },
    )
    rc, report, _ = lint_json("--root", str(root), "--kernel", "5.15.0")
    (f,) = findings(report, "SYS001")
    assert f["suppressed"] == {
        "kind": "inline",
        "reason": "removed once the el7 fleet is gone (INC-7)",
        "expires": None,
        "source": f"{root}/etc/sysctl.d/60-net.conf:1",
    }
    assert rc == 0


def test_several_outputs_at_once(tmp_path: Path) -> None:
    root = tree(tmp_path, RECYCLE_TREE)
    sarif, junit, md = tmp_path / "out.sarif", tmp_path / "out.xml", tmp_path / "summary.md"
    p = run(
        "lint",
        "--root",
        str(root),
        "--kernel",
        "5.15.0",
        "--format",
        f"sarif:{sarif}",
        "--format",
        f"junit:{junit}",
        "--format",
        f"markdown:{md}",
        "--format",
        "table",
    )
    assert p.returncode == 1, p.stderr
    assert "SYS001" in p.stdout
    result = json.loads(sarif.read_text())["runs"][0]["results"][0]
    assert result["ruleId"] == "SYS001" and result["level"] == "error"
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("etc/sysctl.d/60-net.conf") and loc["region"]["startLine"] == 3
    xml = junitparser.JUnitXml.fromfile(str(junit))
    failed = [c.name for s in xml for c in s if any(isinstance(r, junitparser.Failure) for r in c.result)]
    assert any(name.startswith("SYS001") for name in failed)
    assert "SYS001" in md.read_text()


def test_relative_paths_for_code_scanning(tmp_path: Path) -> None:
    tree(tmp_path, RECYCLE_TREE)
    p = run("lint", "rootfs/etc/sysctl.d/60-net.conf", "--kernel", "5.15.0", "--format", "sarif", cwd=tmp_path)
    uri = json.loads(p.stdout)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "rootfs/etc/sysctl.d/60-net.conf"


def test_manifests_and_directories(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: x\n"
        "    securityContext:\n      sysctls:\n      - {name: net.ipv4.tcp_keepalive_time, value: '600'}\n"
    )
    (tmp_path / "deploy/README.md").write_text("net.ipv4.tcp_tw_recycle = 1\n")  # not picked up by the walk
    rc, report, _ = lint_json("deploy", "--kernel", "5.15.0", cwd=tmp_path)
    assert [t["name"] for t in report["targets"]] == ["deploy/pod.yaml#Pod/web"]
    (f,) = findings(report, "SYS004")
    assert f["location"] == {"file": "deploy/pod.yaml", "line": 9} and rc == 1


def test_a_directory_with_nothing_to_lint_is_an_error_not_a_silent_pass(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/99-tuning.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")  # .conf, but not a sysctl place
    p = run("lint", "etc", "--kernel", "4.9.0", cwd=tmp_path)
    assert p.returncode == 2 and "no sysctl files or manifests found" in p.stderr and "Traceback" not in p.stderr
    # the same file under a directory named for sysctl is picked up and judged
    (tmp_path / "files/sysctl").mkdir(parents=True)
    (tmp_path / "files/sysctl/99-tuning.conf").write_text("net.ipv4.tcp_tw_recycle = 1\n")
    rc, report, _ = lint_json("files", "--kernel", "4.9.0", cwd=tmp_path)
    assert [t["name"] for t in report["targets"]] == ["files/sysctl/99-tuning.conf"] and rc == 1
    assert findings(report, "TCP001")


def test_merge_applies_files_in_the_order_given(tmp_path: Path) -> None:
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text("net.ipv4.tcp_fin_timeout = 30\n")
    b.write_text("net.ipv4.tcp_fin_timeout = 15\n")
    _, report, _ = lint_json(str(b), str(a), "--merge")
    (t,) = report["targets"]
    (f,) = findings(report, "SYS003")
    assert f["location"]["file"] == str(a) and f["evidence"]["effective"] == "30"
    assert t["files"] == [str(b), str(a)]


def test_usage_errors(tmp_path: Path) -> None:
    assert run("lint").returncode == 2
    p = run("lint", str(tmp_path / "missing.conf"))
    assert p.returncode == 2 and "no such file" in p.stderr
    p = run("lint", "--root", str(tmp_path), "--kernel", "not-a-kernel")
    assert p.returncode == 2 and "--kernel" in p.stderr
    p = run("lint", "--root", str(tmp_path), "--baseline", str(tmp_path / "nope.json"))
    assert p.returncode == 2 and "baseline" in p.stderr
    (tmp_path / "bad.toml").write_text('[[waiver]]\nrule = "SYS001"\nreason = ""\n')
    p = run("lint", "--root", str(tmp_path), "--config", str(tmp_path / "bad.toml"))
    assert p.returncode == 2


def test_a_file_name_that_is_not_utf8_is_reported_in_every_format(tmp_path: Path) -> None:
    """Python hands such names over as lone surrogates, which no encoder writes: shown as \\xNN instead."""
    import os
    import xml.etree.ElementTree as ET

    d = os.fsencode(tmp_path / "sysctl.d")
    os.mkdir(d)
    with open(os.path.join(d, b"bad\xff.conf"), "w") as fh:
        fh.write("net.ipv4.tcp_tw_recycle = 1\n")
    for fmt in ("json", "sarif", "junit", "markdown", "table"):
        p = run("lint", "sysctl.d", "--kernel", "4.9.0", "--format", fmt, cwd=tmp_path)
        assert p.returncode == 1, (fmt, p.stderr)
        assert "bad\\xff.conf" in p.stdout.replace("\\\\", "\\"), fmt
        if fmt in ("json", "sarif"):
            json.loads(p.stdout)
        if fmt == "junit":
            ET.fromstring(p.stdout)


def test_the_json_reporter_escapes_what_no_encoder_can_write() -> None:
    from tcpaudit.model import Report
    from tcpaudit.reporters.json import render

    p = run("lint", "-", "--format", "json", input="net.ipv4.tcp_fin_timeout = 10\n")
    data = json.loads(p.stdout)
    data["targets"][0]["name"] = "host\udcff"  # a lone surrogate: pydantic-core cannot encode it
    text = render(Report.model_validate(data))
    assert json.loads(text)["targets"][0]["name"] == "host\udcff"


# ---- misspelled keys, out-of-range ints, unreadable inputs, waivers, SARIF locations, wording ---------------------
def test_a_misspelled_key_is_reported_with_the_key_it_meant(tmp_path: Path) -> None:
    (tmp_path / "f.conf").write_text("# keepalive for the NLB\nnet.ipv4.tcp_keepalive_intval = 60\n")
    _, report, _ = lint_json("f.conf", "--kernel", "5.15.0", cwd=tmp_path)
    # issue 16: a misspelt key in a plain sysctl.conf is SYS001 (does not exist, nearest real key as a
    # `key = value` fix), not SYS004 with its Kubernetes remediation
    (f,) = findings(report)
    assert f["rule"] == "SYS001" and f["severity"] == "high"
    assert f["location"] == {"file": "f.conf", "line": 2} and f["keys"] == ["net.ipv4.tcp_keepalive_intval"]
    assert "`net.ipv4.tcp_keepalive_intvl = 60`" in f["explanation"]
    assert "cannot stat /proc/sys/net/ipv4/tcp_keepalive_intval" in f["explanation"]
    assert f["fix"] == {"net.ipv4.tcp_keepalive_intvl": "60"}


def test_valid_keys_the_knowledge_base_does_not_know_are_not_typos(tmp_path: Path) -> None:
    (tmp_path / "ok.conf").write_text(
        "fs.file-max = 2097152\nvm.swappiness = 10\nnet.ipv4.conf.all.rp_filter = 1\nnet.ipv4.vs.conntrack = 1\n"
        "net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.neigh.default.gc_thresh1 = 80000\n"
        "net.core.netdev_max_backlog = 16384\nnet.ipv4.tcp_fastopen = 3\nnet.ipv4.tcp_congestion_control = bbr\n"
        "net.ipv4.tcp_mtu_probing = 1\nnet.ipv4.tcp_fack = 1\nnet.ipv4.tcp_retries1 = 3\nnet.ipv4.udp_mem = 1 2 3\n"
        "net.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_tcp_timeout_close = 10\n"
        "net.netfilter.nf_conntrack_sctp_timeout_established = 3600\nnet.netfilter.nf_conntrack_dccp_loose = 1\n"
    )
    _, report, _ = lint_json("ok.conf", "--kernel", "4.9.0", cwd=tmp_path)
    assert not findings(report, "SYS004") and not findings(report, "SYS001"), findings(report)


def test_an_int_sysctl_above_int_max_is_rejected(tmp_path: Path) -> None:
    """do_proc_dointvec_conv() refuses values outside the C int range with EINVAL (Linux 4.1 and later)."""
    (tmp_path / "s.conf").write_text(
        "net.core.somaxconn = 99999999999\nnet.netfilter.nf_conntrack_max = -2147483649\n"
        "net.ipv4.tcp_max_tw_buckets = 2147483647\n"
        "net.ipv4.tcp_mem = 99999999999 99999999999 99999999999\n"
    )
    rc, report, _ = lint_json("s.conf", "--kernel", "5.15.0", cwd=tmp_path)
    bad = {f["keys"][0]: f for f in findings(report, "SYS002")}
    assert set(bad) == {"net.core.somaxconn", "net.netfilter.nf_conntrack_max"}, (
        "INT_MAX itself and the unsigned long tcp_mem vector are accepted"
    )
    assert bad["net.core.somaxconn"]["severity"] == "high" and bad["net.core.somaxconn"]["location"]["line"] == 1
    assert "-2147483648..2147483647" in bad["net.core.somaxconn"]["explanation"] and rc == 1
    t = report["targets"][0]
    assert "net.core.somaxconn" not in t["sysctls"], "the write fails: the kernel keeps its value"


def test_a_binary_file_is_a_one_line_input_error(tmp_path: Path) -> None:
    blob = b"net.ipv4.tcp_sack = 1\n\x00\x00\x01\x02ELF\x00binary\nmore\x00\n"
    (tmp_path / "b.conf").write_bytes(blob)
    (tmp_path / "rootfs/etc/sysctl.d").mkdir(parents=True)
    (tmp_path / "rootfs/etc/sysctl.d/10-blob.conf").write_bytes(blob)
    (tmp_path / "deploy/sysctl.d").mkdir(parents=True)
    (tmp_path / "deploy/sysctl.d/10-blob.conf").write_bytes(blob)
    for args, shown in (
        (["b.conf"], "b.conf"),
        (["--root", "rootfs"], "rootfs/etc/sysctl.d/10-blob.conf"),
        (["deploy"], "deploy/sysctl.d/10-blob.conf"),
    ):
        p = run("lint", *args, "--kernel", "5.15.0", cwd=tmp_path)
        assert p.returncode == 2 and not p.stdout, (args, p.stdout)
        assert p.stderr.count("\n") == 1 and shown in p.stderr and "binary" in p.stderr, p.stderr
    # not UTF-8 but text: still linted
    (tmp_path / "latin1.conf").write_bytes(b"# r\xe9seau\nnet.ipv4.tcp_tw_recycle = 1\n")
    rc, report, _ = lint_json("latin1.conf", "--kernel", "5.15.0", cwd=tmp_path)
    assert findings(report, "SYS001") and rc == 1


def test_a_baseline_that_is_not_utf8_is_a_one_line_input_error(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    (tmp_path / "bin.conf").write_bytes(b"\xff\xfe\x00garbage\x80")
    p = run("lint", "x.conf", "--baseline", "bin.conf", cwd=tmp_path)
    assert p.returncode == 2 and "internal error" not in p.stderr
    assert p.stderr.count("\n") == 1 and "bin.conf" in p.stderr and "baseline" in p.stderr


def test_a_root_with_no_sysctl_files_is_an_error_not_a_silent_pass(tmp_path: Path) -> None:
    (tmp_path / "emptydir").mkdir()
    for cmd in (["lint"], ["baseline", "-o", "b.json"]):
        p = run(*cmd, "--root", "emptydir", cwd=tmp_path)
        assert p.returncode == 2 and not p.stdout, (cmd, p.stdout)
        assert p.stderr.count("\n") == 1 and "emptydir" in p.stderr and "no sysctl files" in p.stderr
    # a tree whose only file is masked is a real configuration that sets nothing
    (tmp_path / "masked/etc/sysctl.d").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "masked/etc/sysctl.d/50-vendor.conf")
    p = run("lint", "--root", "masked", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_a_waiver_for_an_unknown_rule_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    (tmp_path / ".tcpaudit.toml").write_text('[[waiver]]\nrule = "SYS01"\nreason = "the el7 fleet"\n')
    p = run("lint", "x.conf", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert ".tcpaudit.toml" in p.stderr and "SYS01" in p.stderr and "did you mean SYS001?" in p.stderr
    (tmp_path / ".tcpaudit.toml").write_text('[[waiver]]\nrule = "NOPE99"\nreason = "the el7 fleet"\n')
    p = run("lint", "x.conf", cwd=tmp_path)
    assert p.returncode == 2 and "NOPE99" in p.stderr and "closest known id is" in p.stderr
    (tmp_path / ".tcpaudit.toml").write_text('[[waiver]]\nrule = "sys001"\nreason = "the el7 fleet"\n')
    assert run("lint", "x.conf", cwd=tmp_path).returncode == 0


def test_sarif_results_about_unset_keys_have_a_file(tmp_path: Path) -> None:
    import jsonschema

    schema = ROOT / "fixtures/schemas/sarif-schema-2.1.0.json"
    (tmp_path / "k.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    p = run("lint", "k.conf", "--profile", "azure-lb", "--format", "sarif", cwd=tmp_path)
    doc = json.loads(p.stdout)
    results = doc["runs"][0]["results"]
    unset = [r for r in results if r["ruleId"] in ("NAT001", "NAT003")]
    assert unset, [r["ruleId"] for r in results]
    for r in results:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "k.conf", r["ruleId"]
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] == 1 for r in unset)
    assert not list(jsonschema.Draft4Validator(json.loads(schema.read_text())).iter_errors(doc))


def test_config_targets_are_worded_as_configuration(tmp_path: Path) -> None:
    (tmp_path / "k.conf").write_text("net.ipv4.tcp_fin_timeout = 30\nnet.ipv4.tcp_keepalive_time = 30\n")
    junit = run("lint", "k.conf", "--format", "junit", cwd=tmp_path).stdout
    skipped = {
        c.name.split(":")[0]: c.result[0].message
        for s in junitparser.JUnitXml.fromstring(junit)
        for c in s
        if c.result and isinstance(c.result[0], junitparser.Skipped)
    }
    assert "on this host" not in skipped["CT002"] and "configuration" in skipped["CT002"]
    assert "computed" not in skipped["TCP005"].split("is not set here")[0] and "'" not in skipped["TCP005"]
    _, report, _ = lint_json("k.conf", cwd=tmp_path)
    (tcp011,) = findings(report, "TCP011")
    assert "(line 2)" in tcp011["explanation"] and "(lines 2)" not in tcp011["explanation"]
    md = run("lint", "k.conf", "--format", "markdown", cwd=tmp_path).stdout
    item = next(line for line in md.splitlines() if line.startswith("- **TCP011**"))
    assert item.endswith("— at k.conf:2") and "target k.conf" not in item
