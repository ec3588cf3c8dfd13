"""What the kernel accepts for pod sysctls (kernel_db/kubernetes.toml [accepts], SYS008), proved on the running kernel.

Each test writes values inside a new network and IPC namespace it creates with `unshare --net --ipc` (never the
host's own sysctls) with one os.write() per value, as runc's writeSystemProperty does, and compares EINVAL with what
the knowledge base and SYS008 predict. It asserts on outcomes of writes, never on timing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest
import yaml

from tcpaudit.kernel.kubernetes import load_kubernetes_db
from tcpaudit.kernel.release import parse_release
from tcpaudit.model import Outcome
from tcpaudit.rules.engine import catalogue, run_rules

from .rulecases import CASE_DIR, build_case

# Writes every (key, value) of each list in order, inside the namespace; prints one JSON line per list:
# [[key, value, "ok" | "EINVAL" | other error], ...]
_WRITER = r"""
import json, os, sys
for batch in json.loads(sys.stdin.read()):
    out = []
    for key, value in batch:
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as e:
            out.append([key, value, e.strerror]); continue
        try:
            os.write(fd, value.encode()); r = "ok"
        except OSError as e:
            r = "EINVAL" if e.errno == 22 else e.strerror
        finally:
            os.close(fd)
        out.append([key, value, r])
    print(json.dumps(out))
"""


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network and IPC namespaces"
    if shutil.which("unshare") is None:
        return "util-linux `unshare` is not installed"
    return None


def _write_batches(batches: list[list[list[str]]]) -> list[list[list[str]]]:
    """Each batch runs in its own fresh namespaces, so earlier writes cannot change later verdicts."""
    results = []
    for batch in batches:
        r = subprocess.run(
            ["unshare", "--net", "--ipc", sys.executable, "-c", _WRITER],
            input=json.dumps([batch]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            pytest.skip(f"unshare failed: {r.stderr.strip()[:200]}")
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return results


_PROBES = {
    "u8": ["-1", "0", "1", "255", "256", "65536", "abc"],
    "uint": ["-1", "0", "2147483648", "abc"],
    "minmax": ["-1", "0", "1", "2", "1024", "65535", "65536", "abc"],
    "gid_range": ["0 2147483647", "1 0", "0 4294967294", "0 4294967295", "-1 5", "abc"],
    # lows at or above the default ip_unprivileged_port_start (1024): the cross-key check is SYS008's, not the table's
    "port_range": ["32768 60999", "40000 50000", "50000 40000", "1024 65535", "1024 65536", "abc"],
    "port_list": ["", "0", "65535", "65536", "8080,9000-9100", "8080 9090", "abc"],
}


def test_accepts_table_matches_the_running_kernel():
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    release = parse_release(platform.release())
    db = load_kubernetes_db()
    batches, expected = [], []
    for key, entry in sorted(db.accepts.items()):
        if not os.path.exists("/proc/sys/" + key.replace(".", "/")):
            continue
        if not entry.applies_to(release):
            continue
        for value in _PROBES[entry.shape]:
            if entry.shape == "minmax" and key == "net.ipv4.ip_unprivileged_port_start" and value.isdigit():
                if int(value) > 32768:
                    continue  # above the default range's low end: the cross-key refusal, tested below
            batches.append([[key, value]])
            expected.append((key, value, entry.rejects(value) is not None))
    assert batches, "no pod-settable sysctl of the table exists on this kernel"
    results = _write_batches(batches)
    wrong = [
        f"{key}={value!r}: kernel {res[0][2]}, table says {'EINVAL' if refused else 'ok'}"
        for (key, value, refused), res in zip(expected, results, strict=True)
        if (res[0][2] == "EINVAL") != refused
    ]
    assert not wrong, wrong


def _pod_sysctls(case: dict) -> list[list[str]]:
    doc = yaml.safe_load(case["lint"]["text"])
    spec = doc["spec"]
    spec = spec.get("template", {}).get("spec", spec)
    return [[s["name"].replace("/", "."), str(s["value"])] for s in spec["securityContext"]["sysctls"]]


def _sys008_cases() -> list[tuple[str, dict]]:
    doc = yaml.safe_load((CASE_DIR / "SYS008.yaml").read_text())
    return [(c["name"], c) for c in doc["cases"] if isinstance(c.get("lint"), dict) and "kernel" not in c]


@pytest.mark.parametrize("name,case", _sys008_cases(), ids=[n for n, _ in _sys008_cases()])
def test_sys008_verdict_is_what_the_kernel_does(name, case):
    """SYS008 fires exactly when writing the pod's sysctls (in either order, as runc's map order is random) fails."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    sysctls = _pod_sysctls(case)
    if not all(os.path.exists("/proc/sys/" + k.replace(".", "/")) for k, _ in sysctls):
        pytest.skip("a sysctl of this case does not exist on this kernel")
    case = {**case, "kernel": platform.release()}
    rules = [r for r in catalogue() if r.meta.id == "SYS008"]
    _, results = run_rules(build_case(case), "case", rules=rules)
    fires = results[0].outcome is Outcome.fail
    outcomes = _write_batches([sysctls, list(reversed(sysctls))])
    fails = [any(r[2] != "ok" for r in batch) for batch in outcomes]
    assert fails[0] == fails[1], f"the order of the writes changed the outcome: {outcomes}"
    assert fires == fails[0], f"SYS008 {'fires' if fires else 'passes'}, the kernel: {outcomes}"
