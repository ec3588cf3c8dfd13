"""Markdown (CI job summaries) states what the table states: the context assumed, the kernel, why a finding
has its severity, the rules that gave no verdict and the gaps (issue 17, item 7). Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from .cli import ROOT, run

SNAP = ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json"


def test_markdown_states_context_kernel_unchecked_and_gaps(tmp_path: Path) -> None:
    doc = json.loads(run("audit", str(SNAP), "--format", "json").stdout)
    (t,) = doc["targets"]
    p = run("audit", str(SNAP), "--format", "markdown")
    assert p.returncode in (0, 1), p.stderr
    text = " ".join(p.stdout.split()).replace("\\", "")
    assert "what was assumed and what was not checked" in text
    for c in t["context"]:
        assert f"context: {c}" in text
    assert f"kernel: {t['kernel']['release']}" in text
    unknown = [c for c in t["checks"] if c["outcome"] == "unknown"]
    assert unknown, "the fixture has rules that could not read their input"
    assert f"unknown ({len(unknown)}):" in text
    for c in unknown:
        assert f"{c['rule']}: " in text
    assert f"{len(t['checks'])} rules: " in text
    for g in t["gaps"]:
        assert g.replace("\\", "")[:60] in text


def test_markdown_says_why_a_finding_has_its_severity(tmp_path: Path) -> None:
    p = run("audit", str(SNAP), "--format", "markdown")
    doc = json.loads(run("audit", str(SNAP), "--format", "json").stdout)
    f = next(f for f in doc["targets"][0]["findings"] if f["context"])
    text = " ".join(p.stdout.split()).replace("\\", "")
    assert f"severity {f['severity']} because: {f['context'][0]}" in text


def test_markdown_names_the_point_release_a_debian_host_is_judged_as(tmp_path: Path) -> None:
    snap = json.loads(SNAP.read_text())
    snap["kernel"] = {
        "release": "6.1.0-18-amd64",
        "proc_version": "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
        "Debian 6.1.76-1 (2024-02-01)",
    }
    f = tmp_path / "debian.json"
    f.write_text(json.dumps(snap))
    p = run("audit", str(f), "--format", "markdown")
    assert p.returncode in (0, 1), p.stderr
    assert "kernel: 6.1.0-18-amd64 (judged as upstream 6.1.76)" in p.stdout.replace("\\", "")
