#!/bin/sh
# /init of the test guest (busybox sh): loads the modules, mounts the virtio disks the host
# formatted under /export/NAME, serves them with knfsd and answers the host's control channel.
# Every step that fails prints OPENVAAI-GUEST-FAILED and powers off, so the host's wait ends
# at once with this console log.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt /var/lib/nfs/v4recovery /var/lib/nfs/sm
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /run/rpcbind /dev/pts
ln -s /run /var/run
say() { echo "openvaai-guest: $*"; }
fail() {
    say "$*"
    echo "OPENVAAI-GUEST-FAILED"
    poweroff -f
}
step() { "$@" || fail "failed: $*"; }

# Modules: the base list (virtio, filesystems, nfsd, the NFS client) then the boot's extras.
for list in /etc/guest/modules /etc/guest/modules.extra; do
    [ -f "$list" ] || continue
    while read -r m; do
        [ -n "$m" ] && step insmod "$m"
    done < "$list"
done

step ip link set lo up
step ip link set eth0 up
step ip addr add 10.0.2.15/24 dev eth0

# Disks: /etc/guest/disks has "NAME FSTYPE" lines; a disk's virtio serial is its NAME.
while read -r name fstype; do
    [ -n "$name" ] || continue
    dev=
    for b in /sys/block/vd*; do
        [ "$(cat "$b/serial" 2>/dev/null)" = "$name" ] && dev=/dev/${b##*/}
    done
    [ -n "$dev" ] || fail "no virtio disk with serial $name"
    step mkdir -p "/export/$name"
    step mount -t "$fstype" "$dev" "/export/$name"
done < /etc/guest/disks

# knfsd: grace and lease lowered before nfsd starts (NFSv4 OPEN waits out the grace period).
step mount -t nfsd nfsd /proc/fs/nfsd
echo 10 > /proc/fs/nfsd/nfsv4gracetime || fail "cannot set nfsv4gracetime"
echo 10 > /proc/fs/nfsd/nfsv4leasetime || fail "cannot set nfsv4leasetime"
# lockd (NLM, which nfsd starts for NFSv3) has a grace period of its own, 5 x nlm_timeout
# (50 s), in which knfsd refuses every NFSv4 LOCK too (NFS4ERR_GRACE: a flock on a client
# mount waits it out), and v4_end_grace does not end it: lowered to its least (3 s).
echo 3 > /proc/sys/fs/nfs/nlm_timeout || fail "cannot set nlm_timeout"
echo 3 > /proc/sys/fs/nfs/nlm_grace_period || fail "cannot set nlm_grace_period"
touch /var/lib/nfs/etab /var/lib/nfs/rmtab
step rpcbind -w
sleep 0.2
pidof rpcbind >/dev/null || fail "rpcbind is not running"
step exportfs -ra
step rpc.mountd
step rpc.nfsd -p 2049 -V 3 -V 4.1 -V 4.2 4
# No client can have state to reclaim on a fresh guest: end the grace period now.
echo Y > /proc/fs/nfsd/v4_end_grace || say "v4_end_grace not available: OPENs wait 10 s"
[ -x /etc/guest/setup ] && step /etc/guest/setup

nc -ll -p 7001 -e /bin/guest-ctl &
say "exports: $(exportfs -v | tr '\n' ' ')"
echo "OPENVAAI-GUEST-READY"
while :; do sleep 3600; done
