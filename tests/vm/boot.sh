#!/usr/bin/env bash
# Boots the kit's kernel (tests/vm/kit.sh) in QEMU with this machine's root file system shared
# read-only (9p), tmpfs on /run (with run/tmp and run/home for the guest's TMPDIR and HOME: a
# tmpfs on /tmp would hide a checkout there) and on TMP, and OUT shared read-write. The guest loads the
# kernel's TLS and cipher modules, brings up loopback, runs OUT/guest.sh as root, and leaves
# its output in OUT/guest.log and its exit status in OUT/rc; then it powers off.
# QEMU emulates the CPU (TCG): nested KVM is not available everywhere, and this is a
# functional test, not a measurement. Usage: boot.sh KIT TMP OUT
set -euo pipefail
kit=$(readlink -f "$1") tmp=$2 out=$3
ver=$(ls "$kit/lib/modules")
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
mkdir -p "$build"/{bin,dev,proc,sys,host,lib/modules/"$ver"}
cp /bin/busybox "$build/bin/busybox"
modules=$kit/lib/modules/$ver
(cd "$modules" && cp -r --parents modules.* kernel/drivers/virtio kernel/net/9p kernel/fs/9p \
    kernel/fs/netfs $(ls -d kernel/fs/fscache 2>/dev/null) "$build/lib/modules/$ver/")
cat > "$build/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci 9pnet_virtio 9p; do modprobe \$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 root /host
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t tmpfs run /host/run; mkdir -p /host/run/tmp /host/run/home
mkdir -p "/host$tmp"; mount -t tmpfs work "/host$tmp"
mkdir -p "/host$out"; mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "/host$out"
rm -rf /lib/modules; ln -s "/host$kit/lib/modules" /lib/modules
for m in tls gcm aesni_intel ghash_clmulni_intel chacha20poly1305; do modprobe \$m; done
ip link set lo up
chroot /host /bin/sh "$out/guest.sh" > "/host$out/guest.log" 2>&1
echo \$? > "/host$out/rc"
sync
poweroff -f
INIT
chmod +x "$build/init"
(cd "$build" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$build.cpio.gz")
mv "$build.cpio.gz" "$build/initrd.gz"
# Bounded: a guest that hangs must not hang the test suite.
timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot -nic none \
    -kernel "$kit/boot/vmlinuz-$ver" -initrd "$build/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" \
    -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$out,mount_tag=out,security_model=none"
