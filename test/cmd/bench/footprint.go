package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// Footprint is one measuring window of the agent process.
type Footprint struct {
	Window     float64   `json:"window_s"`
	CPUSeconds float64   `json:"cpu_s"`   // utime+stime over the window
	RSSMiB     float64   `json:"rss_mib"` // mean of the samples
	RSSMaxMiB  float64   `json:"rss_max_mib"`
	RSSSamples []float64 `json:"rss_samples_mib"` // one a second
}

// CPUPercent is CPU time over the window as a percentage of one core.
func (f Footprint) CPUPercent() float64 {
	if f.Window == 0 {
		return 0
	}
	return 100 * f.CPUSeconds / f.Window
}

// measureFootprint samples VmRSS of pid every second and its CPU time over window.
func measureFootprint(ctx context.Context, pid int, window time.Duration, alive func() error) (Footprint, error) {
	c0, err := cpuTicks(pid)
	if err != nil {
		return Footprint{}, err
	}
	start := time.Now()
	var f Footprint
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < window {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-tick.C:
		}
		if err := alive(); err != nil {
			return f, err
		}
		rss, err := rssMiB(pid)
		if err != nil {
			return f, err
		}
		f.RSSSamples = append(f.RSSSamples, rss)
	}
	c1, err := cpuTicks(pid)
	if err != nil {
		return f, err
	}
	f.Window = time.Since(start).Seconds()
	f.CPUSeconds = float64(c1-c0) / clockTicks
	sum := 0.0
	for _, s := range f.RSSSamples {
		sum += s
		if s > f.RSSMaxMiB {
			f.RSSMaxMiB = s
		}
	}
	if len(f.RSSSamples) > 0 {
		f.RSSMiB = sum / float64(len(f.RSSSamples))
	}
	return f, nil
}

// rssMiB reads VmRSS from /proc/<pid>/status.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuTicks is utime+stime of pid (all its threads) from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	// After "pid (comm)": field 3 is state, so utime (14) and stime (15) are at 11 and 12.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + st, nil
}
