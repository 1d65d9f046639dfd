package main

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestMeanAndPercentile(t *testing.T) {
	xs := []float64{0.3, 0.1, math.NaN(), 0.2, 1.0}
	if got := mean(xs); math.Abs(got-0.4) > 1e-12 {
		t.Errorf("mean = %v, want 0.4 (NaN left out)", got)
	}
	if got := percentile(xs, 50); got != 0.2 {
		t.Errorf("p50 = %v, want 0.2", got)
	}
	if got := percentile(xs, 100); got != 1.0 {
		t.Errorf("p100 = %v, want 1.0", got)
	}
	for _, empty := range [][]float64{nil, {math.NaN()}} {
		if !math.IsNaN(mean(empty)) || !math.IsNaN(median(empty)) {
			t.Errorf("mean/median of %v should be NaN", empty)
		}
	}
}

func TestExitDelaysWithinThePeriod(t *testing.T) {
	period := time.Second
	d := exitDelays(2000, period, rand.New(rand.NewPCG(1, 2)))
	if len(d) != 2000 {
		t.Fatalf("got %d delays", len(d))
	}
	lo, hi, sum := period, time.Duration(0), time.Duration(0)
	for _, x := range d {
		if x < 0 || x >= period {
			t.Fatalf("delay %v outside [0, %v)", x, period)
		}
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	// Uniform over the period: the samples reach both ends and average about half of it.
	if lo > 10*time.Millisecond || hi < 990*time.Millisecond {
		t.Errorf("delays span %v..%v, want nearly all of [0, 1s)", lo, hi)
	}
	if avg := sum / 2000; avg < 450*time.Millisecond || avg > 550*time.Millisecond {
		t.Errorf("mean delay %v, want about 500ms", avg)
	}
}

const metricsBefore = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2582912e+07
# HELP go_memstats_alloc_bytes_total Total number of bytes allocated.
# TYPE go_memstats_alloc_bytes_total counter
go_memstats_alloc_bytes_total 9.9e+07
# HELP kubelet_runtime_operations_duration_seconds [ALPHA] Duration in seconds of runtime operations.
# TYPE kubelet_runtime_operations_duration_seconds histogram
kubelet_runtime_operations_duration_seconds_bucket{operation_type="list_podsandbox",le="0.005"} 10
kubelet_runtime_operations_duration_seconds_bucket{operation_type="list_podsandbox",le="+Inf"} 12
kubelet_runtime_operations_duration_seconds_sum{operation_type="list_podsandbox"} 0.04
kubelet_runtime_operations_duration_seconds_count{operation_type="list_podsandbox"} 12
kubelet_runtime_operations_duration_seconds_bucket{operation_type="version",le="+Inf"} 3
kubelet_runtime_operations_duration_seconds_sum{operation_type="version"} 0.001
kubelet_runtime_operations_duration_seconds_count{operation_type="version"} 3
# HELP kubelet_runtime_operations_errors_total Cumulative number of runtime operation errors.
# TYPE kubelet_runtime_operations_errors_total counter
kubelet_runtime_operations_errors_total{operation_type="version"} 1
`

const metricsAfter = `# TYPE kubelet_runtime_operations_duration_seconds histogram
kubelet_runtime_operations_duration_seconds_bucket{operation_type="list_podsandbox",le="+Inf"} 15
kubelet_runtime_operations_duration_seconds_sum{operation_type="list_podsandbox"} 0.05
kubelet_runtime_operations_duration_seconds_count{operation_type="list_podsandbox"} 15
kubelet_runtime_operations_duration_seconds_bucket{operation_type="run_podsandbox",le="+Inf"} 1
kubelet_runtime_operations_duration_seconds_sum{operation_type="run_podsandbox"} 0.07
kubelet_runtime_operations_duration_seconds_count{operation_type="run_podsandbox"} 1
kubelet_runtime_operations_duration_seconds_bucket{operation_type="version",le="+Inf"} 3
kubelet_runtime_operations_duration_seconds_sum{operation_type="version"} 0.001
kubelet_runtime_operations_duration_seconds_count{operation_type="version"} 3
`

func TestParseMetricsAndDelta(t *testing.T) {
	before, err := parseMetrics(strings.NewReader(metricsBefore))
	if err != nil {
		t.Fatal(err)
	}
	if before.Ops["list_podsandbox"] != 12 || before.Ops["version"] != 3 || len(before.Ops) != 2 {
		t.Errorf("ops = %v", before.Ops)
	}
	if before.Go["go_goroutines"] != 42 || before.Go["go_memstats_heap_inuse_bytes"] != 12582912 || before.Go["go_memstats_alloc_bytes_total"] != 9.9e7 {
		t.Errorf("go stats = %v", before.Go)
	}
	after, err := parseMetrics(strings.NewReader(metricsAfter))
	if err != nil {
		t.Fatal(err)
	}
	d := opsDelta(before.Ops, after.Ops)
	want := map[string]float64{"list_podsandbox": 3, "run_podsandbox": 1}
	if len(d) != len(want) || d["list_podsandbox"] != 3 || d["run_podsandbox"] != 1 {
		t.Errorf("delta = %v, want %v (unchanged operations left out)", d, want)
	}
	if total(d) != 4 || scaled(d, 2)["list_podsandbox"] != 1.5 {
		t.Errorf("total %v, scaled %v", total(d), scaled(d, 2))
	}
	if _, err := parseMetrics(strings.NewReader("not metrics {")); err == nil {
		t.Error("bad input parsed")
	}
}

func TestRowWorseAndGoal(t *testing.T) {
	if w := (row{mk: 2, up: 1}).worse(); w != 2 {
		t.Errorf("latency worse = %v", w)
	}
	if w := (row{mk: 5, up: 10, higherBetter: true}).worse(); w != 2 {
		t.Errorf("pods/s worse = %v, want upstream/minikubelet", w)
	}
	if w := (row{mk: math.NaN(), up: 1}).worse(); !math.IsNaN(w) {
		t.Errorf("unmeasured row worse = %v", w)
	}
	if !(goal{mk: 0.7, up: 1, limit: 0.7}).met() || (goal{mk: 0.71, up: 1, limit: 0.7}).met() || (goal{mk: math.NaN(), up: 1, limit: 1}).met() {
		t.Error("goal limits")
	}
}

func TestReportRowsSkipUnmeasured(t *testing.T) {
	c := config{SeqPods: 2, Batches: []int{2}, FootprintPods: 3, MaxPods: 10}
	run := func(agent string, f float64) RunResult {
		return RunResult{Agent: agent, SeqRunning: []float64{0.2 * f, 0.3 * f}, SeqReady: []float64{0.2 * f, 0.3 * f},
			CRISingle:    map[string]float64{"run_podsandbox": 1, "list_podsandbox": f},
			Batches:      []BatchResult{{Pods: 2, AllReady: f, PodsPerSec: 2 / f, Ready: []float64{f}, DeleteGone: []float64{0.1}, CRICalls: map[string]float64{"stop_podsandbox": 2}}},
			ExitToStatus: []float64{0.1 * f}}
	}
	pr := &ProfileResult{Profile: profile{Name: "bound"}, Floor: []FloorSample{{Total: 0.1}},
		Runs: []RunResult{run("minikubelet", 1), run("upstream", 2)}}
	rows := pr.rows(c)
	for _, r := range rows {
		if strings.Contains(r.name, "crash loop") || strings.Contains(r.name, "idle") {
			t.Errorf("row %q shown though no run measured it", r.name)
		}
	}
	md := pr.table(c) + pr.goals(c) + pr.criTable(c)
	for _, want := range []string{"batch of 2: first create → all Ready | 1000 ms | 2000 ms | 0.50", "**met**", "| run_podsandbox | 1 | 1 |", "| **total** | 2 | 3 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// A goal not met says where the time or memory went; a met one does not.
func TestGoalsWhereItGoes(t *testing.T) {
	c := config{SeqPods: 1, Batches: []int{30}, FootprintPods: 3, MaxPods: 10, cores: 2}
	run := func(agent string, ready, anon, file float64) RunResult {
		return RunResult{Agent: agent, SeqRunning: []float64{0.3},
			Batches: []BatchResult{{Pods: 30, AllReady: ready, CPUCreate: map[string]float64{
				"agent": 0.5, "containerd (with CNI plugins)": 6, "shims (with runc)": 2, "kube-apiserver": 1.5, "etcd": 0.5, otherCPU: 1}}},
			Idle: &Footprint{RSSMiB: anon + file, AnonMiB: anon, FileMiB: file}, ImageMiB: 2 * file}
	}
	pr := &ProfileResult{Profile: profile{Name: "ordinary", Footprint: true}, Floor: []FloorSample{{Total: 0.1}},
		Runs: []RunResult{run("minikubelet", 9, 10, 30), run("upstream", 10, 40, 50)}}
	md := pr.goals(c)
	for _, want := range []string{
		"batch of 30, first create → all Ready ≤ 0.70 × upstream's: 9000 ms vs 10.0 s, ratio 0.90 — **not met**",
		"with minikubelet the machine was busy 11.5 CPU-s (64 % of its 2 cores), of which the agent 0.5, containerd and its shims 8.0, kube-apiserver and etcd 2.0",
		"anonymous pages (heap, stacks) 10.0 MiB vs 40.0 MiB, ratio 0.25; file pages (the binary as mapped in) 30.0 MiB vs 50.0 MiB, ratio 0.60, of read-only segments of 60.0 MiB vs 100.0 MiB",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("goals lack %q:\n%s", want, md)
		}
	}
	pr.Runs[0].Batches[0].AllReady = 5
	if md := pr.goals(c); strings.Count(md, "where it goes") != 1 { // the idle RSS goal only
		t.Errorf("a met goal says where it goes:\n%s", md)
	}
}

// The floors say how far a goal is from what the runtime alone, or client-go alone, takes.
func TestGoalsAgainstTheFloors(t *testing.T) {
	c := config{SeqPods: 1, Batches: []int{30}, FootprintPods: 3, MaxPods: 10}
	run := func(agent string, ready, gone float64, removed map[string]float64) RunResult {
		return RunResult{Agent: agent, SeqRunning: []float64{0.3},
			Batches: []BatchResult{{Pods: 30, AllReady: ready, DeleteGone: []float64{gone}, CPURemoved: removed}},
			Idle:    &Footprint{RSSMiB: 50, AnonMiB: 20, FileMiB: 30}}
	}
	pr := &ProfileResult{Profile: profile{Name: "ordinary", Footprint: true}, Floor: []FloorSample{{Total: 0.1}},
		BatchFloors: []BatchFloor{{Pods: 30, AllStarted: 8, CPU: map[string]float64{"containerd (with CNI plugins)": 3, "shims (with runc)": 4, otherCPU: 1}}},
		ClientFloor: &ClientFloor{Footprint: Footprint{RSSMiB: 20, AnonMiB: 4, FileMiB: 16}, ImageMiB: 30},
		Runs: []RunResult{
			run("minikubelet", 9, 0.2, map[string]float64{"shims (with runc)": 1, "containerd (with CNI plugins)": 0.25, "kube-apiserver": 0.25}),
			run("upstream", 10, 0.05, map[string]float64{"kube-apiserver": 0.25, "etcd": 0.05}),
		}}
	md := pr.goals(c) + pr.table(c) + pr.batchFloorTable()
	for _, want := range []string{
		"batch of 30: all Ready minus the CRI batch floor (the agent's share) | 1000 ms | 2000 ms | 0.50",
		"the runtime alone, with no agent, starts the batch in 8000 ms (CRI batch floor); the goal (7000 ms) is below it, out of any agent's reach; above the floor minikubelet takes 1000 ms, upstream 2000 ms, ratio 0.50",
		"(test/cmd/clientfloor) has an RSS of 20.0 MiB (anonymous 4.0 MiB, file 16.0 MiB, of read-only segments of 30.0 MiB); the goal (17.5 MiB) is below it, out of reach of any agent built on client-go",
		"batch of 30: while the API server removed the batch (first delete → last DELETED event) the machine was busy with minikubelet 1.50 CPU-s, of which containerd and its shims (the agent's kill signals run runc) 1.25, kube-apiserver and etcd 0.25; with upstream 0.30 CPU-s, of which containerd and its shims (the agent's kill signals run runc) 0.00, kube-apiserver and etcd 0.30",
		"| 30 | 8000 ms | 3.00 | 4.00 | 1.00 | 8.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// A floor below the goal leaves room; the delete rows within 1.05 say nothing more.
	pr.BatchFloors[0].AllStarted = 5
	pr.Runs[0].Batches[0].DeleteGone = []float64{0.05}
	pr.ClientFloor.RSSMiB = 15
	md = pr.goals(c)
	for _, want := range []string{"the goal (7000 ms) leaves 2000 ms above it for the API and the agent", "the goal (17.5 MiB) leaves 2.5 MiB for all the rest of an agent"} {
		if !strings.Contains(md, want) {
			t.Errorf("goals lack %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "while the API server removed the batch") {
		t.Errorf("delete rows within 1.05 got a where line:\n%s", md)
	}
}

// The exit goal splits its time into the runtime's part (until its CRI status shows the
// exit) and what came after it; runs without the runtime's part are left out of it.
func TestExitGoalSplitsTheRuntimesPart(t *testing.T) {
	c := config{SeqPods: 1, Batches: []int{30}}
	run := func(agent string, status, runtime []float64) RunResult {
		return RunResult{Agent: agent, SeqRunning: []float64{0.3}, ExitToStatus: status, ExitToRuntime: runtime}
	}
	pr := &ProfileResult{Profile: profile{Name: "bound"}, Floor: []FloorSample{{Total: 0.1}},
		Runs: []RunResult{
			run("minikubelet", []float64{0.27, 0.37}, []float64{0.22, 0.22}), // a runtime row at 1.10
			run("upstream", []float64{0.60, 0.80}, []float64{0.20, 0.20}),
		}}
	if got := pr.exitShare("minikubelet"); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("minikubelet's share = %v, want 0.1", got)
	}
	if got := pr.exitShare("upstream"); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("upstream's share = %v, want 0.5", got)
	}
	md := pr.goals(c) + pr.table(c)
	for _, want := range []string{
		"the runtime itself showed the exit 170 ms (minikubelet's runs) and 150 ms (upstream's) after the container exited",
		"took 100 ms against 500 ms (0.20)",
		"(4) the agent's share: terminated state seen minus the runtime showing it, mean | 100 ms | 500 ms | 0.20",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(pr.goals(c), "no row more than 1.05 × worse than upstream's (schedule and runtime rows excepted; for pods/s upstream / minikubelet) — **met**") {
		t.Errorf("a runtime row counted against the agent:\n%s", pr.goals(c))
	}
	pr.Runs = append(pr.Runs, run("upstream", []float64{5}, nil)) // an older run: not in the split
	if got := pr.exitShare("upstream"); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("upstream's share with an older run = %v, want 0.5", got)
	}
}
