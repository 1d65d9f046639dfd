package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU time during a workload, by who spent it: which process group the time went to is
// what says whether an agent can still win a batch (its own time, and the API and runtime
// work its calls cause) or the runtime's floor bounds it.

// cpuGroups maps a process's comm (its first 15 bytes) to its group. A process's time
// includes that of its children it has reaped: containerd's holds the CNI plugins it ran,
// a shim's the runc calls it made.
var cpuGroups = map[string]string{
	"minikubelet":     "agent",
	"kubelet":         "agent",
	"containerd":      "containerd (with CNI plugins)",
	"containerd-shim": "shims (with runc)",
	"kube-apiserver":  "kube-apiserver",
	"etcd":            "etcd",
	"kube-scheduler":  "scheduler and controller-manager",
	"kube-controller": "scheduler and controller-manager",
	"bench":           "bench (load and watch)",
}

// otherCPU is the machine's busy time no grouped process accounts for: pod processes,
// processes not reaped by a grouped parent, the kernel's own work.
const otherCPU = "other"

type cpuSnapshot struct {
	busy  int64             // /proc/stat: all CPUs' non-idle time, in USER_HZ
	procs map[int]procTicks // grouped processes alive at the snapshot
}

type procTicks struct {
	group string
	start int64 // start time: a reused pid is another process
	ticks int64 // utime+stime+cutime+cstime
}

func snapshotCPU() (cpuSnapshot, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSnapshot{}, err
	}
	busy, err := parseBusy(string(stat))
	if err != nil {
		return cpuSnapshot{}, err
	}
	s := cpuSnapshot{busy: busy, procs: map[int]procTicks{}}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		comm, f, err := splitStat(string(b))
		if err != nil {
			return cpuSnapshot{}, fmt.Errorf("%s/stat: %w", d, err)
		}
		g, ok := cpuGroups[comm]
		if !ok {
			continue
		}
		// Fields 14-17 (utime stime cutime cstime) and 22 (starttime), counted from
		// field 3 (state), the first after "(comm)".
		var v [5]int64
		for i, n := range []int{14, 15, 16, 17, 22} {
			if v[i], err = strconv.ParseInt(f[n-3], 10, 64); err != nil {
				return cpuSnapshot{}, fmt.Errorf("%s/stat field %d: %w", d, n, err)
			}
		}
		s.procs[pid] = procTicks{group: g, start: v[4], ticks: v[0] + v[1] + v[2] + v[3]}
	}
	return s, nil
}

// splitStat gives comm and the fields after it of a /proc/<pid>/stat line.
func splitStat(s string) (string, []string, error) {
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", nil, fmt.Errorf("no (comm)")
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 20 {
		return "", nil, fmt.Errorf("%d fields after comm", len(f))
	}
	return s[i+1 : j], f, nil
}

// parseBusy sums the "cpu" line of /proc/stat but for idle and iowait.
func parseBusy(stat string) (int64, error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != "cpu" {
			continue
		}
		var busy int64
		for i, s := range f[1:] {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
				continue
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
			}
			busy += v
		}
		return busy, nil
	}
	return 0, fmt.Errorf("/proc/stat has no cpu line")
}

// cpuSince is the CPU seconds each group spent from a to b, and otherCPU the rest of the
// machine's busy time. A process that started after a counts from zero; one that ended
// before b is lost to its group (and so counts as other).
func cpuSince(a, b cpuSnapshot) map[string]float64 {
	out := map[string]float64{}
	var grouped int64
	for pid, p := range b.procs {
		d := p.ticks
		if q, ok := a.procs[pid]; ok && q.start == p.start {
			d -= q.ticks
		}
		out[p.group] += float64(d) / clockTicks
		grouped += d
	}
	out[otherCPU] = float64(max(b.busy-a.busy-grouped, 0)) / clockTicks
	return out
}
