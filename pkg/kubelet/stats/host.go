package stats

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// host reads the machine's own counters: cgroup files (the node's root cgroup and the
// system containers), /proc and statfs. Paths are rooted so tests can use a fake tree.
type host struct {
	proc   string // /proc
	cgroup string // /sys/fs/cgroup
	v2     bool   // unified hierarchy only
}

func newHost(proc, cgroup string) host {
	if proc == "" {
		proc = "/proc"
	}
	if cgroup == "" {
		cgroup = "/sys/fs/cgroup"
	}
	_, err := os.Stat(filepath.Join(cgroup, "cgroup.controllers"))
	return host{proc: proc, cgroup: cgroup, v2: err == nil}
}

// cgroupMem is one cgroup's memory as cAdvisor reports it.
type cgroupMem struct {
	usage, workingSet, rss, pgfault, pgmajfault, swap uint64
	limit                                             uint64 // 0: unlimited
	hasSwap                                           bool
}

// cgroupCPU returns the cgroup's cumulative CPU time in nanoseconds.
func (h host) cgroupCPU(path string) (uint64, bool) {
	if h.v2 {
		kv := readKV(filepath.Join(h.cgroup, path, "cpu.stat"))
		if v, ok := kv["usage_usec"]; ok {
			return v * 1000, true
		}
		if path == "/" {
			return h.procCPU()
		}
		return 0, false
	}
	return readUint(filepath.Join(h.cgroup, "cpuacct", path, "cpuacct.usage"))
}

// procCPU is the busy time of all CPUs from /proc/stat (the v2 root has no cpu.stat on
// older kernels).
func (h host) procCPU() (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(h.proc, "stat"))
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, _ := strconv.ParseUint(f[i], 10, 64)
		ticks += v
	}
	return ticks * 1e7, true // USER_HZ is 100 on Linux
}

// cgroupMemory reads a cgroup's memory: working set is usage less inactive file pages,
// as cAdvisor computes it. The v2 root has no memory.current: /proc/meminfo stands in.
func (h host) cgroupMemory(path string) (cgroupMem, bool) {
	var m cgroupMem
	var ok bool
	var inactive uint64
	if h.v2 {
		dir := filepath.Join(h.cgroup, path)
		st := readKV(filepath.Join(dir, "memory.stat"))
		if m.usage, ok = readUint(filepath.Join(dir, "memory.current")); !ok {
			if path != "/" {
				return m, false
			}
			return h.meminfoMemory()
		}
		inactive, m.rss, m.pgfault, m.pgmajfault = st["inactive_file"], st["anon"], st["pgfault"], st["pgmajfault"]
		m.limit, _ = readUint(filepath.Join(dir, "memory.max")) // "max" does not parse: unlimited
		m.swap, m.hasSwap = readUint(filepath.Join(dir, "memory.swap.current"))
	} else {
		dir := filepath.Join(h.cgroup, "memory", path)
		if m.usage, ok = readUint(filepath.Join(dir, "memory.usage_in_bytes")); !ok {
			return m, false
		}
		st := readKV(filepath.Join(dir, "memory.stat"))
		inactive, m.rss, m.pgfault, m.pgmajfault = st["total_inactive_file"], st["total_rss"], st["pgfault"], st["pgmajfault"]
		m.limit, _ = readUint(filepath.Join(dir, "memory.limit_in_bytes"))
		if memsw, ok := readUint(filepath.Join(dir, "memory.memsw.usage_in_bytes")); ok && memsw >= m.usage {
			m.swap, m.hasSwap = memsw-m.usage, true
		}
	}
	if m.limit > 1<<62 { // the kernel's "unlimited", rounded to pages
		m.limit = 0
	}
	m.workingSet = m.usage
	if inactive < m.usage {
		m.workingSet = m.usage - inactive
	}
	return m, true
}

func (h host) meminfoMemory() (cgroupMem, bool) {
	mi := h.meminfo()
	if mi["MemTotal"] == 0 {
		return cgroupMem{}, false
	}
	m := cgroupMem{usage: mi["MemTotal"] - mi["MemFree"], rss: mi["AnonPages"], limit: mi["MemTotal"]}
	m.workingSet = m.usage
	if in := mi["Inactive(file)"]; in < m.usage {
		m.workingSet = m.usage - in
	}
	return m, true
}

// meminfo returns /proc/meminfo in bytes.
func (h host) meminfo() map[string]uint64 {
	out := map[string]uint64{}
	b, _ := os.ReadFile(filepath.Join(h.proc, "meminfo"))
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 3 && f[2] == "kB" {
			v *= 1024
		}
		out[strings.TrimSuffix(f[0], ":")] = v
	}
	return out
}

// cgroupRef names a cgroup in the CPU accounting and the memory hierarchies (the same
// path on v2; on v1 a process may sit in different cgroups of each).
type cgroupRef struct{ cpu, mem string }

func sameCgroup(path string) cgroupRef { return cgroupRef{cpu: path, mem: path} }

// processCgroup returns the cgroups of a process (empty when unknown).
func (h host) processCgroup(pid string) cgroupRef {
	var ref cgroupRef
	b, err := os.ReadFile(filepath.Join(h.proc, pid, "cgroup"))
	if err != nil {
		return ref
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls := "," + parts[1] + ","
		switch {
		case h.v2 && parts[0] == "0" && parts[1] == "":
			return sameCgroup(parts[2])
		case !h.v2 && strings.Contains(ctrls, ",memory,"):
			ref.mem = parts[2]
		case !h.v2 && strings.Contains(ctrls, ",cpuacct,"):
			ref.cpu = parts[2]
		}
	}
	return ref
}

// netDev is one interface's counters from /proc/<pid>/net/dev.
type netDev struct {
	name                                 string
	rxBytes, rxErrors, txBytes, txErrs   uint64
	rxPackets, txPackets, rxDrop, txDrop uint64
}

// hostInterfaces reads the host network namespace's interfaces (as pid 1 sees them),
// leaving out those cAdvisor leaves out: loopback, veth ends of pods, docker bridges.
func (h host) hostInterfaces() []netDev {
	b, err := os.ReadFile(filepath.Join(h.proc, "1", "net", "dev"))
	if err != nil {
		if b, err = os.ReadFile(filepath.Join(h.proc, "net", "dev")); err != nil {
			return nil
		}
	}
	var out []netDev
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if !ok || len(f) < 16 || ignoredInterface(name) {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		out = append(out, netDev{name: name, rxBytes: n(0), rxPackets: n(1), rxErrors: n(2), rxDrop: n(3),
			txBytes: n(8), txPackets: n(9), txErrs: n(10), txDrop: n(11)})
	}
	return out
}

func ignoredInterface(name string) bool {
	for _, p := range []string{"lo", "veth", "docker", "nerdctl"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// fsInfo is statfs of the filesystem holding a path.
type fsInfo struct {
	capacity, available, used, inodes, inodesFree uint64
}

func statfs(path string) (fsInfo, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return fsInfo{}, err
	}
	bs := uint64(s.Bsize)
	return fsInfo{capacity: s.Blocks * bs, available: s.Bavail * bs, used: (s.Blocks - s.Bfree) * bs,
		inodes: s.Files, inodesFree: s.Ffree}, nil
}

// rlimit is the node's task limit (the lower of pid_max and threads-max) and its task
// count, as upstream reads them.
func (h host) rlimit() (maxPID, procs int64, ok bool) {
	maxPID = -1
	for _, f := range []string{"sys/kernel/pid_max", "sys/kernel/threads-max"} {
		if v, ok := readUint(filepath.Join(h.proc, f)); ok && (maxPID < 0 || int64(v) < maxPID) {
			maxPID = int64(v)
		}
	}
	b, err := os.ReadFile(filepath.Join(h.proc, "loadavg"))
	f := strings.Fields(string(b))
	if err != nil || len(f) < 4 {
		return maxPID, 0, false
	}
	_, total, _ := strings.Cut(f[3], "/")
	procs, err = strconv.ParseInt(total, 10, 64)
	return maxPID, procs, err == nil && maxPID >= 0
}

func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// readKV reads a "key value" per line file (memory.stat, cpu.stat).
func readKV(path string) map[string]uint64 {
	out := map[string]uint64{}
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// bootTime is the node's boot time (btime in /proc/stat).
func (h host) bootTime() time.Time {
	b, _ := os.ReadFile(filepath.Join(h.proc, "stat"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(s, 0)
			}
		}
	}
	return time.Time{}
}

// cgroupCreated approximates when a cgroup was made by its directory's change time.
func (h host) cgroupCreated(path string) time.Time {
	dir := filepath.Join(h.cgroup, path)
	if !h.v2 {
		dir = filepath.Join(h.cgroup, "memory", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return time.Time{}
	}
	return time.Unix(st.Ctim.Unix())
}
