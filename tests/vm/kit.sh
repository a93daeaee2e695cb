#!/usr/bin/env bash
# What tests/kernel_tls.rs boots: QEMU, a static busybox, and Debian's current kernel package
# (its kernel has TLS, as a module) unpacked with its module index. Installs the packages if
# missing; the kernel goes to ${SIGIL_VM_KIT:-~/.cache/sigil-vm}/<package>, and `current`
# points at it. Idempotent; prints the kit's path.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # depmod
root=${SIGIL_VM_KIT:-${XDG_CACHE_HOME:-$HOME/.cache}/sigil-vm}
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v depmod >/dev/null || missing+=(kmod)
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1 || ((${#missing[@]})); then
    apt-get update -qq
fi
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
[ -n "$pkg" ] || { echo "kit.sh: apt knows no linux-image-amd64" >&2; exit 1; }
dir=$root/$pkg
if [ ! -e "$dir/.ready" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    # As root, apt warns that it downloads outside its sandbox; the download is what counts.
    (cd "$download" && apt-get download -q "$pkg" >/dev/null 2>&1)
    dpkg-deb -x "$download"/*.deb "$dir"
    rm -rf "$download"
    depmod -b "$dir" "$(ls "$dir/lib/modules")"
    touch "$dir/.ready"
fi
ln -sfn "$pkg" "$root/current"
# Kits of earlier kernel releases are not used again.
find "$root" -mindepth 1 -maxdepth 1 -type d ! -name "$pkg" -exec rm -rf {} +
echo "$root/current"
