# Boots one node: run by `unshare --pid --fork --kill-child --mount --cgroup --net --uts
# --ipc` after moving itself into the node's cgroup in every hierarchy.
# Arguments: <node folder> <cgroup name> <hostname>. The node's root is an overlay over the
# machine's root (writes stay in <node folder>/upper); containerd's state is a plain folder
# (its overlayfs snapshots cannot live on an overlay).
set -eu
D=$1; CG=$2; HN=$3; R=$D/rootfs
mount --make-rprivate /
mkdir -p "$R" "$D/upper" "$D/work" "$D/containerd"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/upper,workdir=$D/work" "$R"
mkdir -p "$R/var/lib/containerd" && mount --bind "$D/containerd" "$R/var/lib/containerd"
mount -t proc proc "$R/proc"
# sysfs of the node's own network namespace; cgroups rooted at the node's cgroup.
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755 cgroup "$R/sys/fs/cgroup"
for h in /sys/fs/cgroup/*/; do
  h=${h%/}; [ -d "$h/$CG" ] || continue
  mkdir -p "$R/sys/fs/cgroup/${h##*/}" && mount --bind "$h/$CG" "$R/sys/fs/cgroup/${h##*/}"
done
mount -o remount,ro,bind "$R/sys/fs/cgroup"
# A /dev of its own: the harmless devices, new ptys, the console is a log file.
mount -t tmpfs -o mode=755,nosuid dev "$R/dev"
for d in null zero full random urandom tty fuse; do
  [ -e "/dev/$d" ] || continue
  touch "$R/dev/$d" && mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"; ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
touch "$R/dev/console" && mount --bind "$D/console.log" "$R/dev/console"
ln -s console "$R/dev/kmsg"
mount -t tmpfs -o mode=755 run "$R/run"
mount -t tmpfs -o mode=1777 tmp "$R/tmp"
hostname "$HN"
cd "$R"; mkdir -p .oldroot; pivot_root . .oldroot; cd /; umount -l /.oldroot; rmdir /.oldroot
# From here on every path is the node's. Its unit set is a kind node image's: none of the
# machine's services, only journald, containerd and what kubeadm enables (the kubelet).
rm -f /etc/systemd/system/*.wants/* /lib/systemd/system/multi-user.target.wants/* \
  /lib/systemd/system/timers.target.wants/* /lib/systemd/system/local-fs.target.wants/* \
  /lib/systemd/system/basic.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl*
for u in /lib/systemd/system/sysinit.target.wants/*; do
  case ${u##*/} in systemd-journald.service|systemd-journal-flush.service) ;; *) rm -f "$u" ;; esac
done
for u in getty.target systemd-udevd.service systemd-timesyncd.service systemd-modules-load.service \
  systemd-sysctl.service systemd-remount-fs.service systemd-binfmt.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /lib/systemd/system/containerd.service /etc/systemd/system/multi-user.target.wants/containerd.service
ln -sf /etc/systemd/system/kubelet.service /etc/systemd/system/multi-user.target.wants/kubelet.service
ln -sf /lib/systemd/system/multi-user.target /etc/systemd/system/default.target
echo "$HN" > /etc/hostname
exec env container=minikubelet-cluster /lib/systemd/systemd --system --log-target=console --log-level=notice
