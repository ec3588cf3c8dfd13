"""deploy/image/build.sh for real: the container image built from Debian's packages and PyPI alone, then run by
runc (an OCI runtime from Debian) the way deploy/kubernetes/daemonset.yaml runs it: the host's PID and network
namespaces, root with exactly the DaemonSet's capabilities, a read-only root filesystem, the textfile directory
mounted at the DaemonSet's path. Inside it `tcpaudit host --all-netns` must find and audit a network namespace
this test made (with a finding provoked in it), and the DaemonSet's own command line must run and write its file.

Needs root and the Debian packages mmdebstrap, umoci, skopeo and runc (scripts/test installs them as root); the
build downloads about 48 MB of .deb files and 13 MB of wheels and takes 1.5-5 minutes here (deploy/README.md).
Without them the tests skip and say so.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tcpaudit import __version__

from .netns import Netns, require_netns

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "deploy" / "image" / "build.sh"
DAEMONSET = REPO / "deploy" / "kubernetes" / "daemonset.yaml"
TOOLS = ("mmdebstrap", "umoci", "skopeo", "runc")

pytestmark = pytest.mark.slow


def _container() -> dict[str, Any]:
    ds = yaml.safe_load(DAEMONSET.read_text(encoding="utf-8"))
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def _pod() -> dict[str, Any]:
    return yaml.safe_load(DAEMONSET.read_text(encoding="utf-8"))["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """OUTDIR of one build.sh run: tcpaudit-VERSION.tar (docker-archive) and oci/. TCPAUDIT_TEST_IMAGE_DIR names
    the OUTDIR of an earlier build to test instead of building (while working on these tests)."""
    prebuilt = os.environ.get("TCPAUDIT_TEST_IMAGE_DIR")
    if prebuilt:
        yield Path(prebuilt)
        return
    if os.geteuid() != 0:
        pytest.skip("build.sh needs root (mmdebstrap's root mode)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs Debian's {' '.join(missing)} (scripts/test installs them as root)")
    out = tmp_path_factory.mktemp("ta-image")
    p = subprocess.run(["bash", str(BUILD), str(out)], capture_output=True, text=True, timeout=1800, cwd=REPO)
    report = "\n".join(ln for ln in p.stderr.splitlines() if ln.startswith("build.sh:"))
    print(report)  # the build's own measurements: seconds, MB downloaded, image size (pytest -s shows them)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    yield out


def test_archive_is_tagged_with_the_daemonsets_image(image: Path) -> None:
    """`docker load` / `podman load` take the name from manifest.json's RepoTags: the DaemonSet's image."""
    tar = image / f"tcpaudit-{__version__}.tar"
    with tarfile.open(tar) as tf:
        fh = tf.extractfile("manifest.json")
        assert fh is not None
        (manifest,) = json.load(fh)
    name = _container()["image"]
    assert name == f"tcpaudit:{__version__}"
    assert manifest["RepoTags"] == [f"docker.io/library/{name}"]  # how docker normalises a bare name
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"docker-archive:{tar}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )["config"]
    assert config["Entrypoint"] == ["/opt/tcpaudit/bin/tcpaudit"]
    assert config["User"] == "65534:65534"  # non-root unless the pod says otherwise (the DaemonSet does)


@pytest.fixture(scope="module")
def bundle(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI runtime bundle unpacked from the docker-archive (the file users load), not from oci/."""
    work = tmp_path_factory.mktemp("ta-bundle")
    tar = image / f"tcpaudit-{__version__}.tar"
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", f"docker-archive:{tar}", f"oci:{work}/layout:t"],
        check=True,
        timeout=600,
    )
    subprocess.run(["umoci", "unpack", "--image", f"{work}/layout:t", str(work / "b")], check=True, timeout=600)
    shutil.rmtree(work / "layout")
    return work / "b"


def _caps(names: list[str]) -> list[str]:
    return [f"CAP_{n}" for n in names]


def run_in_image(
    bundle: Path, args: list[str], textfile: Path | None = None, as_daemonset: bool = True, without: str = ""
) -> Any:
    """runc run of the image with its entrypoint and `args`. as_daemonset: the DaemonSet's pod and container
    security settings, translated to the OCI runtime config the kubelet's runtime would give; `without`: less
    that one capability."""
    cfg = json.loads((bundle / "config.json").read_text())
    proc = cfg["process"]
    proc["terminal"] = False
    proc["args"] = [*proc["args"][:1], *args]  # the image's entrypoint (Kubernetes `args` replace only CMD)
    cfg["linux"].pop("resources", None)
    if as_daemonset:
        pod, c = _pod(), _container()
        sc = c["securityContext"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        caps = _caps([c for c in sc["capabilities"]["add"] if c != without])
        proc["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        proc["user"] = {"uid": sc["runAsUser"], "gid": sc["runAsGroup"]}
        proc["noNewPrivileges"] = not sc["allowPrivilegeEscalation"]
        proc["env"] += [f"{e['name']}={e['value']}" for e in c.get("env", [])]
        cfg["root"]["readonly"] = sc["readOnlyRootFilesystem"]
        drop = {"pid"} if pod["hostPID"] else set()
        drop |= {"network", "uts"} if pod["hostNetwork"] else set()  # the kubelet shares both
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] not in drop]
        if "uts" in drop:
            cfg.pop("hostname", None)
        volumes = {v["name"]: v for v in pod["volumes"]}
        for m in c["volumeMounts"]:
            v = volumes[m["name"]]
            if "hostPath" in v:
                assert textfile is not None
                cfg["mounts"].append(
                    {"destination": m["mountPath"], "type": "bind", "source": str(textfile), "options": ["rbind", "rw"]}
                )
            else:
                assert v["emptyDir"]["medium"] == "Memory"
                cfg["mounts"].append(
                    {"destination": m["mountPath"], "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
                )
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = f"ta-deploy2-{secrets.token_hex(3)}"
    try:
        return subprocess.run(
            ["runc", "run", "--bundle", str(bundle), cid], capture_output=True, text=True, timeout=600
        )
    finally:
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pristine_config(bundle: Path) -> Iterator[str]:
    yield (bundle / "config.json").read_text()


@pytest.fixture
def fresh(bundle: Path, pristine_config: str) -> Path:
    (bundle / "config.json").write_text(pristine_config)
    return bundle


def test_version_as_the_images_own_user(fresh: Path) -> None:
    p = run_in_image(fresh, ["--version"], as_daemonset=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"tcpaudit {__version__}"


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A namespace with TCP003 provoked (tcp_rfc1337=1, medium with clients behind NAT) and a process in it, as
    a pod's namespace has: --all-netns finds it through /proc/PID/ns/net. (Its /run/netns bind mount is
    reached only through /proc/1/root, and this machine's PID 1, a sandbox process with capabilities beyond
    any other, may not be opened with CAP_SYS_PTRACE alone; a node's systemd may.)"""
    require_netns()
    ns = Netns(name=f"ta-deploy2-{secrets.token_hex(3)}").create()
    try:
        ns.sysctl(net__ipv4__tcp_rfc1337=1)
        ns.spawn("ready()\nfor _ in commands():\n    pass\n").ready()
        yield ns
    finally:
        ns.close()


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _check_exposition(text: str, inode: int) -> None:
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    m = _families(text)
    assert m["tcpaudit_run_success"] == [({}, 1.0)]
    # the DaemonSet's capabilities are enough to enter the namespace and audit it: the provoked finding is there
    mine = [(lab, v) for lab, v in m.get("tcpaudit_netns_findings", []) if lab["netns_inode"] == str(inode)]
    assert ({"rule": "TCP003", "severity": "medium", "pod_uid": "", "netns_inode": str(inode)}, 1.0) in mine, m
    assert m["tcpaudit_netns_inspected"][0][1] >= 1
    evidence = [lab for lab, _ in m["tcpaudit_tcp_keepalive_time_seconds"] if lab["netns_inode"] == str(inode)]
    assert evidence == [{"scope": "netns", "pod_uid": "", "netns_inode": str(inode)}]


def test_host_all_netns_inside_the_image(fresh: Path, netns: Netns, tmp_path: Path) -> None:
    """The image, run as the DaemonSet runs it, audits a namespace of this host and finds what was provoked."""
    inode = os.stat(f"/run/netns/{netns.name}").st_ino
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    mount = next(m["mountPath"] for m in _container()["volumeMounts"] if m["name"] == "textfile")
    args = ["host", "--all-netns", "--clients-behind-nat", "yes", "--format", f"prometheus:{mount}/tcpaudit.prom"]
    p = run_in_image(fresh, args, textfile)
    # 3: some namespace could not be audited (this machine has others' test namespaces, coming and going)
    assert p.returncode in (0, 1, 3), p.stderr[-3000:]
    _check_exposition((textfile / "tcpaudit.prom").read_text(), inode)


def test_daemonset_command_line_inside_the_image(fresh: Path, netns: Netns, tmp_path: Path) -> None:
    """The DaemonSet's own arguments (agent --all-netns ... --interval 10m), for one run, write the textfile."""
    inode = os.stat(f"/run/netns/{netns.name}").st_ino
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    args = [*_container()["args"], "--runs", "1", "--clients-behind-nat", "yes"]
    p = run_in_image(fresh, args, textfile)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(x.name for x in textfile.iterdir() if not x.name.startswith(".")) == ["tcpaudit.prom"]
    _check_exposition((textfile / "tcpaudit.prom").read_text(), inode)


@pytest.mark.parametrize("cap", ["SYS_PTRACE", "SYS_ADMIN"])
def test_each_namespace_capability_is_needed(fresh: Path, netns: Netns, cap: str, tmp_path: Path) -> None:
    """Without CAP_SYS_PTRACE no other process's namespace can be looked at (one line, exit 3); without
    CAP_SYS_ADMIN there is no setns(2), and the namespace is read only through /proc/PID/net (partial)."""
    inode = os.stat(f"/run/netns/{netns.name}").st_ino
    p = run_in_image(fresh, ["host", "--all-netns", "--format", "json"], tmp_path, without=cap)
    if cap == "SYS_PTRACE":
        assert p.returncode == 3 and p.stdout == "", p.stderr
        (line,) = p.stderr.strip().splitlines()
        assert "without CAP_SYS_PTRACE" in line, line
        return
    targets = json.loads(p.stdout)["targets"]
    (mine,) = [t for t in targets if (t.get("netns") or {}).get("inode") == inode]
    assert mine["status"] == "partial", mine["status"]
