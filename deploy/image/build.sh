#!/usr/bin/env bash
# Build tcpaudit's container image from Debian's packages and PyPI only: no container registry, no daemon,
# no Dockerfile interpreter.
#
#   sudo deploy/image/build.sh [OUTDIR]      # default OUTDIR: build/image
#
# 1. mmdebstrap makes a minimal Debian root filesystem (SUITE, default bookworm) with the packages of
#    packages.txt (python3, iproute2, iptables, procps; util-linux's nsenter is in every Debian system);
# 2. the tcpaudit wheel is built from this checkout and its dependencies are downloaded from PyPI for the
#    image's Python (pip on this machine, with its own index settings), then installed offline into a venv
#    /opt/tcpaudit inside the root filesystem;
# 3. umoci turns the tree into one OCI image layer with the image configuration (entrypoint tcpaudit, user
#    65534, no shell needed) and skopeo writes it as an archive that `docker load` and `podman load` read.
#
# Results in OUTDIR:
#   tcpaudit-VERSION.tar   docker-archive, tagged tcpaudit:VERSION (the image deploy/kubernetes/ names):
#                          docker load -i OUTDIR/tcpaudit-VERSION.tar
#                          skopeo copy docker-archive:OUTDIR/tcpaudit-VERSION.tar docker://REGISTRY/tcpaudit:VERSION
#   oci/                   the same image as an OCI image layout (tag VERSION): umoci unpack, skopeo, crun/runc
#
# Needs root (mmdebstrap's root mode; the tree holds files of other owners), and the Debian packages
# mmdebstrap, umoci and skopeo. Environment: SUITE, MIRROR (a Debian mirror URL; default: mmdebstrap's),
# PYTHON (the interpreter whose pip builds the wheel and downloads; default python3),
# SOURCE_DATE_EPOCH (file and image times; default: the last commit's time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/build/image}"
suite="${SUITE:-bookworm}"
python="${PYTHON:-python3}"

die() { echo "build.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap root mode, files owned by root and others)"
for tool in mmdebstrap umoci skopeo; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install mmdebstrap umoci skopeo"
done
version="$("$python" -c 'import re,sys; print(re.search(r"__version__ = \"([^\"]+)\"", open(sys.argv[1]).read())[1])' \
  "$repo/tcpaudit/__init__.py")"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"

work="$(mktemp -d "${TMPDIR:-/tmp}/ta-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$work/wheels" "$out"

# -- 1. the root filesystem ----------------------------------------------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt")
include="$(IFS=,; echo "${packages[*]}")"
echo "build.sh: mmdebstrap $suite with $include" >&2
# minbase: Essential packages and apt; docs, man pages and locales are left out (a CLI reads none of them).
# The .deb files stay until the hook has counted them (the size of the download), then go with apt's lists.
# maybe-merged-usr: the /usr symlinks made by the hook rather than by the usrmerge package, which would pull in
# perl (some 50 MB) that nothing here runs.
hooks=()
merged=/usr/share/mmdebstrap/hooks/maybe-merged-usr
[ -d "$merged" ] && hooks=(--hook-dir="$merged")
start=$SECONDS
mmdebstrap --quiet --mode=root --variant=minbase --include="$include" "${hooks[@]}" \
  --skip=essential/unlink --skip=download/empty \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='du -cb "$1"/var/cache/apt/archives/*.deb | tail -n1 | cut -f1 >"$1/../debs-bytes"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
  "$suite" "$rootfs" ${MIRROR:+"$MIRROR"}
echo "build.sh: rootfs in $((SECONDS - start)) s, $(($(cat "$work/debs-bytes") / 1000000)) MB of .deb files" >&2

# -- 2. tcpaudit and its dependencies, for the image's Python ------------------------------------------
read -r py_version py_abi glibc < <(chroot "$rootfs" python3 -c \
  'import os, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", f"cp{sys.version_info[0]}{sys.version_info[1]}",
  os.confstr("CS_GNU_LIBC_VERSION").split()[1].replace(".", "_"))')
arch="$(chroot "$rootfs" python3 -c 'import platform; print(platform.machine())')"
echo "build.sh: Python $py_version, glibc $glibc, $arch" >&2
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$repo"
wheel="$(ls "$work"/wheels/tcpaudit-*.whl)"
# Binary wheels only, for the image's interpreter and C library, pinned by the same constraints as CI. Every
# manylinux tag up to the image's glibc is named: older pips do not expand manylinux_2_N to the ones below it.
platforms=()
for ((minor = ${glibc#2_}; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_${arch}"); done
platforms+=(--platform "manylinux2014_${arch}" --platform "manylinux2010_${arch}" --platform "manylinux1_${arch}")
"$python" -m pip download --quiet --dest "$work/wheels" --only-binary=:all: \
  --python-version "$py_version" --implementation cp --abi "$py_abi" "${platforms[@]}" \
  -c "$repo/constraints/ci.txt" "$wheel"
echo "build.sh: $(du -cb "$work"/wheels/*.whl | tail -n1 | cut -f1 | awk '{printf "%d", $1 / 1e6}') MB of wheels" >&2
mkdir -p "$rootfs/tmp/wheels"
cp "$work"/wheels/*.whl "$rootfs/tmp/wheels/"
chroot "$rootfs" python3 -m venv --without-pip /opt/tcpaudit
# the image's own pip (python3-venv's bundled wheel) installs, offline, what was downloaded above
pipwhl="$(ls "$rootfs"/usr/share/python-wheels/pip-*.whl | head -n1)"
chroot "$rootfs" /opt/tcpaudit/bin/python "/usr/share/python-wheels/$(basename "$pipwhl")/pip" install --quiet \
  --no-index --find-links /tmp/wheels --no-cache-dir --disable-pip-version-check tcpaudit
rm -rf "$rootfs/tmp/wheels" "$rootfs/root/.cache"
chroot "$rootfs" /opt/tcpaudit/bin/tcpaudit --version >&2
# No machine identity or host resolver settings in the image; the runtime provides them.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"

# -- 3. the OCI image ----------------------------------------------------------------------------------
start=$SECONDS
tar --create --file "$work/layer.tar" --directory "$rootfs" --numeric-owner --xattrs --sort=name \
  --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime .
rm -rf "$out/oci"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$version"
umoci raw add-layer --image "$out/oci:$version" --history.created "$created" \
  --history.created_by "deploy/image/build.sh ($suite: $include; tcpaudit $version)" "$work/layer.tar"
umoci config --image "$out/oci:$version" --created "$created" --author "tcpaudit deploy/image/build.sh" \
  --history.created "$created" --history.created_by "umoci config" \
  --config.entrypoint /opt/tcpaudit/bin/tcpaudit --config.cmd --help \
  --config.user 65534:65534 --config.workingdir / \
  --config.env PATH=/opt/tcpaudit/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env PYTHONDONTWRITEBYTECODE=1 \
  --config.label "org.opencontainers.image.title=tcpaudit" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$out/oci"
rm -f "$out/tcpaudit-$version.tar"
skopeo --insecure-policy copy --quiet "oci:$out/oci:$version" "docker-archive:$out/tcpaudit-$version.tar:tcpaudit:$version"
echo "build.sh: image in $((SECONDS - start)) s, $(($(stat -c %s "$out/tcpaudit-$version.tar") / 1000000)) MB uncompressed" >&2
echo "build.sh: $out/tcpaudit-$version.tar (tcpaudit:$version; docker load -i / podman load -i), $out/oci" >&2
