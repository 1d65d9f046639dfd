package node

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ThresholdBytes turns an eviction threshold ("100Mi" or "10%") into bytes of total.
func ThresholdBytes(val string, total int64) (int64, error) {
	if p, ok := strings.CutSuffix(val, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("invalid percentage %q", val)
		}
		return int64(float64(total) * f / 100), nil
	}
	q, err := resource.ParseQuantity(val)
	if err != nil {
		return 0, err
	}
	return q.Value(), nil
}

// MeasurePressure returns a function that reports memory, disk and PID pressure against
// the hard eviction thresholds (memory.available, nodefs.available; PIDs above 90% of
// pid_max). A reading that fails reports no pressure: a broken /proc must not evict.
func MeasurePressure(rootDir string, eviction map[string]string) func() Pressure {
	return func() Pressure {
		var p Pressure
		if mi, err := meminfo("/proc/meminfo", "MemTotal", "MemAvailable"); err == nil {
			if t, err := ThresholdBytes(eviction["memory.available"], mi["MemTotal"]); err == nil && eviction["memory.available"] != "" {
				p.Memory = mi["MemAvailable"] < t
			}
		}
		var st unix.Statfs_t
		if err := unix.Statfs(rootDir, &st); err == nil && eviction["nodefs.available"] != "" {
			total, avail := int64(st.Blocks)*int64(st.Bsize), int64(st.Bavail)*int64(st.Bsize)
			if t, err := ThresholdBytes(eviction["nodefs.available"], total); err == nil {
				p.Disk = avail < t
			}
		}
		if max, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(max))); err == nil {
				if entries, err := os.ReadDir("/proc"); err == nil {
					procs := 0
					for _, e := range entries {
						if _, err := strconv.Atoi(e.Name()); err == nil {
							procs++
						}
					}
					p.PID = procs > n*9/10
				}
			}
		}
		return p
	}
}
