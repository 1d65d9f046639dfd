package main

import (
	"context"
	"debug/elf"
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
	// The two parts of RSS (means): anonymous pages (Go heap, stacks, runtime) and file
	// pages, almost all of them the agent's own binary as the kernel mapped it in.
	AnonMiB float64 `json:"rss_anon_mib"`
	FileMiB float64 `json:"rss_file_mib"`
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
		rss, err := readRSS(pid)
		if err != nil {
			return f, err
		}
		f.RSSSamples = append(f.RSSSamples, rss.total)
		f.AnonMiB += rss.anon
		f.FileMiB += rss.file
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
	if n := float64(len(f.RSSSamples)); n > 0 {
		f.RSSMiB = sum / n
		f.AnonMiB /= n
		f.FileMiB /= n
	}
	return f, nil
}

// rss is one reading of /proc/<pid>/status, in MiB.
type rss struct{ total, anon, file float64 }

// readRSS reads VmRSS, RssAnon and RssFile from /proc/<pid>/status.
func readRSS(pid int) (rss, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rss{}, err
	}
	return parseRSS(string(b))
}

func parseRSS(status string) (rss, error) {
	var r rss
	fields := map[string]*float64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	seen := 0
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || fields[f[0]] == nil {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return rss{}, fmt.Errorf("%s %q: %v", f[0], f[1], err)
		}
		*fields[f[0]] = kb / 1024
		seen++
	}
	if seen != len(fields) {
		return rss{}, fmt.Errorf("status lacks one of VmRSS, RssAnon, RssFile")
	}
	return r, nil
}

// imageMiB is the size of the read-only segments (code, read-only data, the Go function
// tables) of the program pid runs: what its RssFile can grow to.
func imageMiB(pid int) (float64, error) {
	f, err := elf.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0 {
			n += p.Filesz
		}
	}
	return float64(n) / (1 << 20), nil
}

// cpuTicks is utime+stime of pid (all its threads) from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, f, err := splitStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	// utime (field 14) and stime (15); f starts at field 3 (state).
	u, err1 := strconv.ParseInt(f[14-3], 10, 64)
	st, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + st, nil
}
