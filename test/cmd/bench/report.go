package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// percentile is the nearest-rank p-th percentile of xs (NaN if empty).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func median(xs []float64) float64 { return percentile(xs, 50) }

func (res *Results) runsOf(agent string) []RunResult {
	var out []RunResult
	for _, r := range res.Runs {
		if r.Agent == agent {
			out = append(out, r)
		}
	}
	return out
}

// pooled joins one sample list over all runs of agent.
func (res *Results) pooled(agent string, f func(RunResult) []float64) []float64 {
	var out []float64
	for _, r := range res.runsOf(agent) {
		out = append(out, f(r)...)
	}
	return out
}

// perRun is one value per run of agent.
func (res *Results) perRun(agent string, f func(RunResult) float64) []float64 {
	var out []float64
	for _, r := range res.runsOf(agent) {
		out = append(out, f(r))
	}
	return out
}

type unit int

const (
	seconds unit = iota
	mib
	percent
	rate
)

func format(v float64, u unit) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch u {
	case mib:
		return fmt.Sprintf("%.1f MiB", v)
	case percent:
		return fmt.Sprintf("%.2f %%", v)
	case rate:
		return fmt.Sprintf("%.2f pods/s", v)
	}
	switch a := math.Abs(v); {
	case a < 0.01:
		return fmt.Sprintf("%.1f ms", v*1000)
	case a < 10:
		return fmt.Sprintf("%.0f ms", v*1000)
	default:
		return fmt.Sprintf("%.1f s", v)
	}
}

func ratio(mk, up float64) string {
	if math.IsNaN(mk) || math.IsNaN(up) || up == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", mk/up)
}

type row struct {
	name   string
	mk, up float64
	u      unit
}

// crashGap is the time between restart i and restart i-1 (restart 0 = the create call).
func crashGap(i int) func(RunResult) float64 {
	return func(r RunResult) float64 {
		if len(r.CrashRestarts) <= i {
			return math.NaN()
		}
		if i == 0 {
			return r.CrashRestarts[0]
		}
		return r.CrashRestarts[i] - r.CrashRestarts[i-1]
	}
}

// exitAdjusted takes away the test app's own 50 ms between its HTTP answer and its exit.
func exitAdjusted(r RunResult) []float64 {
	var out []float64
	for _, v := range r.ExitToStatus {
		out = append(out, v-0.050)
	}
	return out
}

func (res *Results) rows() []row {
	var rows []row
	add := func(name string, u unit, f func(agent string) float64) {
		rows = append(rows, row{name: name, mk: f("minikubelet"), up: f("upstream"), u: u})
	}
	pct := func(name string, samples func(RunResult) []float64, ps ...float64) {
		for _, p := range ps {
			p := p
			add(fmt.Sprintf("%s, p%.0f", name, p), seconds, func(a string) float64 { return percentile(res.pooled(a, samples), p) })
		}
	}
	med := func(name string, u unit, f func(RunResult) float64) {
		add(name, u, func(a string) float64 { return median(res.perRun(a, f)) })
	}
	floorP50 := percentile(floorTotals(res.Floor), 50)
	c := res.Config

	pct(fmt.Sprintf("(1) create → Running, %d pods one after another", c.SeqPods), func(r RunResult) []float64 { return r.SeqRunning }, 50, 90, 99)
	pct("(1) create → Ready", func(r RunResult) []float64 { return r.SeqReady }, 50, 90, 99)
	add("(1) create → Running p50 minus the CRI floor p50 (the agent's share)", seconds, func(a string) float64 {
		return percentile(res.pooled(a, func(r RunResult) []float64 { return r.SeqRunning }), 50) - floorP50
	})
	med(fmt.Sprintf("(2) batch of %d: first create → all Ready", c.BatchPods), seconds, func(r RunResult) float64 { return r.BatchAllReady })
	med("(2) batch throughput", rate, func(r RunResult) float64 { return r.BatchPodsPerSec })
	pct("(2) batch: create → Ready per pod", func(r RunResult) []float64 { return r.BatchReady }, 50, 99)
	pct("(3) delete (grace 0) → DELETED event", func(r RunResult) []float64 { return r.DeleteGone }, 50, 99)
	med("(3) first delete → no sandbox of the batch ready in the runtime", seconds, func(r RunResult) float64 { return r.DeleteRuntimeStopped })
	pct("(4) /exit answered → terminated state seen", func(r RunResult) []float64 { return r.ExitToStatus }, 50, 90, 99)
	pct("(4) container exit → terminated state seen (minus the app's 50 ms)", exitAdjusted, 50, 90)
	med("(5) crash loop: create → restart 1 seen (upstream schedule: ~0 s back-off)", seconds, crashGap(0))
	med("(5) crash loop: restart 1 → restart 2 (upstream: 10 s back-off)", seconds, crashGap(1))
	med("(5) crash loop: restart 2 → restart 3 (upstream: 20 s back-off)", seconds, crashGap(2))
	med("(6) idle: RSS (mean over the window)", mib, func(r RunResult) float64 { return r.Idle.RSSMiB })
	med("(6) idle: CPU (% of one core)", percent, func(r RunResult) float64 { return r.Idle.CPUPercent() })
	med(fmt.Sprintf("(6) %d sleeping pods: RSS", c.FootprintPods), mib, func(r RunResult) float64 { return r.Loaded.RSSMiB })
	med(fmt.Sprintf("(6) %d sleeping pods: CPU (%% of one core)", c.FootprintPods), percent, func(r RunResult) float64 { return r.Loaded.CPUPercent() })
	return rows
}

func floorTotals(fs []FloorSample) []float64 {
	var out []float64
	for _, f := range fs {
		out = append(out, f.Total)
	}
	return out
}

func (res *Results) table() string {
	var b strings.Builder
	b.WriteString("| metric | minikubelet | upstream | ratio mk/up |\n|---|---:|---:|---:|\n")
	for _, r := range res.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, format(r.mk, r.u), format(r.up, r.u), ratio(r.mk, r.up))
	}
	return b.String()
}

func (res *Results) goals() string {
	var b strings.Builder
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	seq := func(a string) []float64 { return res.pooled(a, func(r RunResult) []float64 { return r.SeqRunning }) }
	mk, up := percentile(seq("minikubelet"), 50), percentile(seq("upstream"), 50)
	fmt.Fprintf(&b, "- p50 create → Running at most half of upstream's: %s vs %s, ratio %s — %s\n",
		format(mk, seconds), format(up, seconds), ratio(mk, up), verdict(mk <= up/2))
	adj := res.pooled("minikubelet", exitAdjusted)
	p50, p90 := percentile(adj, 50), percentile(adj, 90)
	raw := percentile(res.pooled("minikubelet", func(r RunResult) []float64 { return r.ExitToStatus }), 50)
	fmt.Fprintf(&b, "- status write-back under 100 ms: container exit → terminated state seen by a watch p50 %s (p90 %s; %s from the HTTP answer, which the app gives 50 ms before exiting) — %s\n",
		format(p50, seconds), format(p90, seconds), format(raw, seconds), verdict(p50 < 0.1))
	rss := func(a string) float64 {
		return median(res.perRun(a, func(r RunResult) float64 { return r.Idle.RSSMiB }))
	}
	mk, up = rss("minikubelet"), rss("upstream")
	fmt.Fprintf(&b, "- idle RSS at most a third of upstream's: %s vs %s, ratio %s — %s\n",
		format(mk, mib), format(up, mib), ratio(mk, up), verdict(mk <= up/3))
	return b.String()
}

func (res *Results) perRunTable() string {
	var b strings.Builder
	b.WriteString("| run | node | wall | create → Running p50 | batch all Ready | exit → status p50 | restarts seen at | idle RSS | idle CPU | RSS with pods |\n|---|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for i, r := range res.Runs {
		var rs []string
		for _, t := range r.CrashRestarts {
			rs = append(rs, fmt.Sprintf("%.1f", t))
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f s | %s | %s | %s | %s s | %s | %s | %s |\n", i+1, r.Node, r.Wall,
			format(median(r.SeqRunning), seconds), format(r.BatchAllReady, seconds), format(median(r.ExitToStatus), seconds),
			strings.Join(rs, ", "), format(r.Idle.RSSMiB, mib), format(r.Idle.CPUPercent(), percent), format(r.Loaded.RSSMiB, mib))
	}
	return b.String()
}

func (res *Results) floorTable() string {
	var b strings.Builder
	col := func(f func(FloorSample) float64) []float64 {
		var out []float64
		for _, s := range res.Floor {
			out = append(out, f(s))
		}
		return out
	}
	b.WriteString("| CRI call | p50 | p90 | max |\n|---|---:|---:|---:|\n")
	for _, c := range []struct {
		name string
		f    func(FloorSample) float64
	}{
		{"RunPodSandbox", func(s FloorSample) float64 { return s.RunSandbox }},
		{"CreateContainer", func(s FloorSample) float64 { return s.CreateContainer }},
		{"StartContainer", func(s FloorSample) float64 { return s.StartContainer }},
		{"total", func(s FloorSample) float64 { return s.Total }},
	} {
		xs := col(c.f)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.name, format(percentile(xs, 50), seconds), format(percentile(xs, 90), seconds), format(percentile(xs, 100), seconds))
	}
	return b.String()
}

func markdown(res *Results) string {
	e, c := res.Env, res.Config
	var b strings.Builder
	fmt.Fprintf(&b, "# minikubelet vs upstream kubelet — %s\n\n", res.Date)
	fmt.Fprintf(&b, "`make bench`: one test bed, the agents alternated (minikubelet, upstream, ... %d runs each), "+
		"each run on a fresh node with an empty runtime. Raw samples: `%s.json`. Took %.1f min.\n\n", c.Rounds, res.Date, res.Elapsed/60)
	b.WriteString("## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d cores; memory %.1f GiB; kernel %s\n", e.CPU, e.Cores, e.MemoryGiB, e.Kernel)
	fmt.Fprintf(&b, "- runtime: %s (the test bed's own instance, cgroup driver cgroupfs)\n", e.Containerd)
	dirty := ""
	if strings.HasSuffix(e.SourceCommit, "-dirty") {
		dirty = " (minikubelet was built from the working tree, uncommitted changes included)"
	}
	fmt.Fprintf(&b, "- Go: %s; source: %s%s\n", e.Go, e.SourceCommit, dirty)
	fmt.Fprintf(&b, "- minikubelet: %s (default flags of the test bed: per-pod QoS cgroups, --v=2)\n", e.Minikubelet)
	fmt.Fprintf(&b, "- upstream: %s (the test bed's configuration: cgroupsPerQOS false, generic PLEG, --v=1)\n\n", e.Upstream)
	b.WriteString("## Goals\n\n")
	b.WriteString(res.goals())
	b.WriteString("\n## Results\n\n")
	fmt.Fprintf(&b, "Latencies are measured from just before the API call to the moment a pod watch delivered the event "+
		"(time.Now() in the watcher). Percentiles pool the samples of all runs (nearest rank); single per-run figures are the "+
		"median of the %d runs. Lower is better except pods/s.\n\n", c.Rounds)
	b.WriteString(res.table())
	b.WriteString("\n### Per run\n\n")
	b.WriteString(res.perRunTable())
	fmt.Fprintf(&b, "\n### (7) Floor: sandbox + container start straight through CRI, no kubelet (%d samples)\n\n", len(res.Floor))
	b.WriteString(res.floorTable())
	b.WriteString("\n## Method\n\n")
	fmt.Fprintf(&b, `1. %d busybox `+"`sleep 3600`"+` pods, bound with spec.nodeName, created one after another; each waited for until Ready.
2. %d such pods created at once (one goroutine each, client QPS not limiting).
3. Those %d deleted at once with gracePeriodSeconds 0 (the API object goes at once; the runtime time shows the agent's teardown).
4. %d test-app pods (restartPolicy Never) asked in turn to exit with GET /exit?code=3; the app answers and exits 50 ms later.
5. Alongside 4, a busybox pod `+"`sh -c 'exit 1'`"+` with restartPolicy Always; restartCount 1, 2, 3 as the watch saw them.
6. The agent's VmRSS (sampled every second, mean) and utime+stime over %v with no pods, then with %d busybox sleep pods Ready.
7. Once, with no agent running: RunPodSandbox + CreateContainer + StartContainer of busybox sleep with minikubelet's CRI configs, one warm-up then %d samples.

Between workloads all pods are deleted, their sandboxes waited for until stopped and then removed, so every workload starts
from an empty runtime. Between runs the agent is stopped, its Node deleted and the runtime emptied through CRI.
`, c.SeqPods, c.BatchPods, c.BatchPods, c.ExitSamples, c.Idle, c.FootprintPods, c.FloorSamples)
	return b.String()
}
