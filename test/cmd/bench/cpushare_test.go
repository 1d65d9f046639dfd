package main

import (
	"math"
	"os"
	"testing"
)

func TestParseBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 2 30 5000 7 1 4 3 50 0\ncpu0 50 1 15 2500 3 0 2 1 25 0\nintr 1 2 3\n"
	got, err := parseBusy(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(100 + 2 + 30 + 1 + 4 + 3); got != want {
		t.Errorf("busy = %d, want %d", got, want)
	}
	if _, err := parseBusy("cpu0 1 2 3 4 5 6 7\n"); err == nil {
		t.Error("no aggregate cpu line: no error")
	}
	if _, err := parseBusy("cpu  1 x 3 4 5 6 7 8\n"); err == nil {
		t.Error("bad number: no error")
	}
}

func TestSplitStat(t *testing.T) {
	line := "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 555 1000 10"
	comm, f, err := splitStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if comm != "a (b) c" || f[14-3] != "7" || f[17-3] != "1" || f[22-3] != "555" {
		t.Errorf("comm %q, utime %s, cstime %s, starttime %s", comm, f[14-3], f[17-3], f[22-3])
	}
	for _, bad := range []string{"42 a S 1", "42 (x) S 1 2"} {
		if _, _, err := splitStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCPUSince(t *testing.T) {
	a := cpuSnapshot{busy: 1000, procs: map[int]procTicks{
		1: {group: "agent", start: 10, ticks: 100},
		2: {group: "etcd", start: 10, ticks: 50},
		3: {group: "agent", start: 10, ticks: 70}, // its pid is another process's at b
	}}
	b := cpuSnapshot{busy: 1300, procs: map[int]procTicks{
		1: {group: "agent", start: 10, ticks: 130},
		2: {group: "etcd", start: 10, ticks: 60},
		3: {group: "agent", start: 99, ticks: 20},
		4: {group: "etcd", start: 120, ticks: 5},
	}}
	got := cpuSince(a, b)
	want := map[string]float64{"agent": 0.5, "etcd": 0.15, otherCPU: (300 - 50 - 15) / 100.0}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

// On this machine: the machine's busy time grows across a busy loop.
func TestSnapshotCPU(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Fatal(err)
	}
	a, err := snapshotCPU()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	b, err := snapshotCPU()
	if err != nil {
		t.Fatal(err)
	}
	if b.busy <= a.busy {
		t.Errorf("busy %d then %d after a busy loop (%d)", a.busy, b.busy, x)
	}
}
