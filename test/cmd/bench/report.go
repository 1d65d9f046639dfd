package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// finite drops NaNs (a workload a run did not do).
func finite(xs []float64) []float64 {
	var out []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// percentile is the nearest-rank p-th percentile of xs (NaN if empty).
func percentile(xs []float64, p float64) float64 {
	s := finite(xs)
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func median(xs []float64) float64 { return percentile(xs, 50) }

// mean is the arithmetic mean of xs (NaN if empty).
func mean(xs []float64) float64 {
	s := finite(xs)
	if len(s) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return sum / float64(len(s))
}

func (pr *ProfileResult) runsOf(agent string) []RunResult {
	var out []RunResult
	for _, r := range pr.Runs {
		if r.Agent == agent {
			out = append(out, r)
		}
	}
	return out
}

// pooled joins one sample list over all runs of agent.
func (pr *ProfileResult) pooled(agent string, f func(RunResult) []float64) []float64 {
	var out []float64
	for _, r := range pr.runsOf(agent) {
		out = append(out, f(r)...)
	}
	return out
}

// perRun is one value per run of agent (NaN where the run did not measure it).
func (pr *ProfileResult) perRun(agent string, f func(RunResult) float64) []float64 {
	var out []float64
	for _, r := range pr.runsOf(agent) {
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
	calls
	count
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
	case calls:
		return formatCount(v)
	case count:
		return fmt.Sprintf("%.0f", v)
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

// formatCount prints whole numbers as such and fractions (calls per pod) with 2 decimals.
func formatCount(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
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
	// higherBetter: pods/s; the goal check then uses upstream / minikubelet.
	higherBetter bool
	// schedule: the row follows upstream's own timing (crash back-off), ~1.0 expected.
	schedule bool
	// runtime: the row times the runtime alone, measured beside each agent, ~1.0 expected.
	runtime bool
}

// worse is how many times worse minikubelet is than upstream on this row (NaN if unknown).
func (r row) worse() float64 {
	if math.IsNaN(r.mk) || math.IsNaN(r.up) || r.mk == 0 || r.up == 0 {
		return math.NaN()
	}
	if r.higherBetter {
		return r.up / r.mk
	}
	return r.mk / r.up
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

// appExitDelay is the test app's own time between its /exit answer and its exit (seconds).
const appExitDelay = 0.050

// exitAdjusted takes away the test app's own 50 ms between its HTTP answer and its exit.
func exitAdjusted(r RunResult) []float64 {
	var out []float64
	for _, v := range r.ExitToStatus {
		out = append(out, v-appExitDelay)
	}
	return out
}

func batchOf(r RunResult, n int) *BatchResult {
	for i := range r.Batches {
		if r.Batches[i].Pods == n {
			return &r.Batches[i]
		}
	}
	return nil
}

// batchValue is f of the run's batch of n (NaN if the run had none).
func batchValue(n int, f func(*BatchResult) float64) func(RunResult) float64 {
	return func(r RunResult) float64 {
		if b := batchOf(r, n); b != nil {
			return f(b)
		}
		return math.NaN()
	}
}

func batchSamples(n int, f func(*BatchResult) []float64) func(RunResult) []float64 {
	return func(r RunResult) []float64 {
		if b := batchOf(r, n); b != nil {
			return f(b)
		}
		return nil
	}
}

func footprintValue(f func(*Footprint) float64, which func(RunResult) *Footprint) func(RunResult) float64 {
	return func(r RunResult) float64 {
		if fp := which(r); fp != nil {
			return f(fp)
		}
		return math.NaN()
	}
}

func goStat(name string, scale float64, which func(RunResult) map[string]float64) func(RunResult) float64 {
	return func(r RunResult) float64 {
		if v, ok := which(r)[name]; ok {
			return v / scale
		}
		return math.NaN()
	}
}

func idleOf(r RunResult) *Footprint   { return r.Idle }
func loadedOf(r RunResult) *Footprint { return r.Loaded }
func rssOf(f *Footprint) float64      { return f.RSSMiB }
func anonOf(f *Footprint) float64     { return nanIfZero(f.AnonMiB) } // zero: results from before the split
func fileOf(f *Footprint) float64     { return nanIfZero(f.FileMiB) }
func cpuOf(f *Footprint) float64      { return f.CPUPercent() }

func (pr *ProfileResult) floorP50() float64 { return percentile(floorTotals(pr.Floor), 50) }

func seqRunning(r RunResult) []float64 { return r.SeqRunning }

// agentShare is the agent's share of create -> Running: its p50 minus the CRI floor's.
func (pr *ProfileResult) agentShare(agent string) float64 {
	return percentile(pr.pooled(agent, seqRunning), 50) - pr.floorP50()
}

// batchFloorOf is the CRI floor of a batch of n started at once (nil if not measured).
func (pr *ProfileResult) batchFloorOf(n int) *BatchFloor {
	for i := range pr.BatchFloors {
		if pr.BatchFloors[i].Pods == n {
			return &pr.BatchFloors[i]
		}
	}
	return nil
}

// batchAllReady is the median over agent's runs of the batch of n's first create → all
// Ready.
func (pr *ProfileResult) batchAllReady(agent string, n int) float64 {
	return median(pr.perRun(agent, batchValue(n, func(b *BatchResult) float64 { return b.AllReady })))
}

// batchShare is the agent's share of a batch: all Ready less the CRI batch floor.
func (pr *ProfileResult) batchShare(agent string, n int) float64 {
	f := pr.batchFloorOf(n)
	if f == nil {
		return math.NaN()
	}
	return pr.batchAllReady(agent, n) - f.AllStarted
}

const mibBytes = 1 << 20

func (pr *ProfileResult) rows(c config) []row {
	var rows []row
	add := func(name string, u unit, f func(agent string) float64) *row {
		rows = append(rows, row{name: name, mk: f("minikubelet"), up: f("upstream"), u: u})
		return &rows[len(rows)-1]
	}
	pct := func(name string, samples func(RunResult) []float64, ps ...float64) {
		for _, p := range ps {
			add(fmt.Sprintf("%s, p%.0f", name, p), seconds, func(a string) float64 { return percentile(pr.pooled(a, samples), p) })
		}
	}
	avg := func(name string, samples func(RunResult) []float64) {
		add(name+", mean", seconds, func(a string) float64 { return mean(pr.pooled(a, samples)) })
	}
	med := func(name string, u unit, f func(RunResult) float64) *row {
		return add(name, u, func(a string) float64 { return median(pr.perRun(a, f)) })
	}

	pct(fmt.Sprintf("(1) create → Running, %d pods one after another", c.SeqPods), seqRunning, 50, 90, 99)
	pct("(1) create → Ready", func(r RunResult) []float64 { return r.SeqReady }, 50, 90, 99)
	add("(1) create → Running p50 minus the CRI floor p50 (the agent's share)", seconds, pr.agentShare)
	med("(1) CRI calls for one pod, create → Running seen", calls, func(r RunResult) float64 { return nanIfNil(r.CRISingle) })
	for _, n := range c.Batches {
		add(fmt.Sprintf("(2) batch of %d: first create → all Ready", n), seconds, func(a string) float64 { return pr.batchAllReady(a, n) })
		add(fmt.Sprintf("(2) batch of %d: all Ready minus the CRI batch floor (the agent's share)", n), seconds, func(a string) float64 { return pr.batchShare(a, n) })
		med(fmt.Sprintf("(2) batch of %d: throughput", n), rate, batchValue(n, func(b *BatchResult) float64 { return b.PodsPerSec })).higherBetter = true
		pct(fmt.Sprintf("(2) batch of %d: create → Ready per pod", n), batchSamples(n, func(b *BatchResult) []float64 { return b.Ready }), 50, 99)
		pct(deleteRowName(n), batchSamples(n, func(b *BatchResult) []float64 { return b.DeleteGone }), 50, 99)
		med(fmt.Sprintf("(3) batch of %d: first delete → no sandbox of the batch ready in the runtime", n), seconds,
			batchValue(n, func(b *BatchResult) float64 { return b.DeleteRuntimeStopped }))
		med(fmt.Sprintf("(2, 3) batch of %d: CRI calls per pod, created and deleted", n), calls,
			batchValue(n, func(b *BatchResult) float64 { return nanIfNil(b.CRICalls) / float64(n) }))
	}
	exitRaw := func(r RunResult) []float64 { return r.ExitToStatus }
	avg("(4) /exit answered → terminated state seen", exitRaw)
	pct("(4) /exit answered → terminated state seen", exitRaw, 50, 90, 99)
	avg("(4) container exit → terminated state seen (minus the app's 50 ms)", exitAdjusted)
	pct("(4) container exit → terminated state seen (minus the app's 50 ms)", exitAdjusted, 50, 90)
	add("(4) /exit answered → the runtime shows the container exited (runtime row: CRI status polled every 5 ms), mean", seconds, func(a string) float64 {
		return mean(pr.pooled(a, func(r RunResult) []float64 { return r.ExitToRuntime }))
	}).runtime = true
	add("(4) the agent's share: terminated state seen minus the runtime showing it, mean", seconds, pr.exitShare)
	med("(5) crash loop: create → restart 1 seen (upstream: no back-off before it)", seconds, crashGap(0))
	med("(5) crash loop: restart 1 → restart 2 (schedule row: upstream's 10 s back-off)", seconds, crashGap(1)).schedule = true
	med("(5) crash loop: restart 2 → restart 3 (schedule row: upstream's 20 s back-off)", seconds, crashGap(2)).schedule = true
	med("(6) idle: RSS (mean over the window)", mib, footprintValue(rssOf, idleOf))
	med("(6) idle: RSS, anonymous pages (RssAnon: Go heap, stacks, runtime)", mib, footprintValue(anonOf, idleOf))
	med("(6) idle: RSS, file pages (RssFile: the agent's binary as mapped in)", mib, footprintValue(fileOf, idleOf))
	med("(6) the agent binary's read-only segments (code, read-only data, Go function tables)", mib, func(r RunResult) float64 { return nanIfZero(r.ImageMiB) })
	med("(6) idle: CPU (% of one core)", percent, footprintValue(cpuOf, idleOf))
	idleGo := func(r RunResult) map[string]float64 { return r.IdleGo }
	med("(6) idle: Go heap in use (go_memstats_heap_inuse_bytes)", mib, goStat("go_memstats_heap_inuse_bytes", mibBytes, idleGo))
	med("(6) idle: memory the Go runtime got from the OS (go_memstats_sys_bytes)", mib, goStat("go_memstats_sys_bytes", mibBytes, idleGo))
	med("(6) idle: goroutines", count, goStat("go_goroutines", 1, idleGo))
	fp := fmt.Sprintf("(6) %d sleeping pods (node maxPods %d)", c.FootprintPods, c.MaxPods)
	med(fp+": first create → all Running", seconds, func(r RunResult) float64 {
		if r.Loaded == nil {
			return math.NaN()
		}
		return r.AllRunning
	})
	med(fp+": RSS", mib, footprintValue(rssOf, loadedOf))
	med(fp+": RSS, anonymous pages", mib, footprintValue(anonOf, loadedOf))
	med(fp+": RSS, file pages", mib, footprintValue(fileOf, loadedOf))
	med(fp+": CPU (% of one core)", percent, footprintValue(cpuOf, loadedOf))
	loadedGo := func(r RunResult) map[string]float64 { return r.LoadedGo }
	med(fp+": Go heap in use", mib, goStat("go_memstats_heap_inuse_bytes", mibBytes, loadedGo))
	med(fp+": goroutines", count, goStat("go_goroutines", 1, loadedGo))

	// Rows neither agent measured in this profile (e.g. the footprint) are left out.
	var out []row
	for _, r := range rows {
		if !math.IsNaN(r.mk) || !math.IsNaN(r.up) {
			out = append(out, r)
		}
	}
	return out
}

// nanIfNil is the total of a CRI call count map, NaN when it was not measured.
func nanIfZero(v float64) float64 {
	if v == 0 {
		return math.NaN()
	}
	return v
}

func nanIfNil(m map[string]float64) float64 {
	if m == nil {
		return math.NaN()
	}
	return total(m)
}

func floorTotals(fs []FloorSample) []float64 {
	var out []float64
	for _, f := range fs {
		out = append(out, f.Total)
	}
	return out
}

func (pr *ProfileResult) table(c config) string {
	var b strings.Builder
	b.WriteString("| metric | minikubelet | upstream | ratio mk/up |\n|---|---:|---:|---:|\n")
	for _, r := range pr.rows(c) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, format(r.mk, r.u), format(r.up, r.u), ratio(r.mk, r.up))
	}
	return b.String()
}

// goal is one goal line of issue 18: minikubelet / upstream at most limit.
type goal struct {
	name   string
	mk, up float64
	u      unit
	limit  float64
	// where says, for a goal not met, where the time or memory goes ("" for nothing measured).
	where func() string
}

func (g goal) met() bool {
	return !math.IsNaN(g.mk) && !math.IsNaN(g.up) && g.up > 0 && g.mk/g.up <= g.limit
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func (pr *ProfileResult) goalList(c config) []goal {
	var gs []goal
	for _, n := range c.Batches {
		mk, up := pr.batchAllReady("minikubelet", n), pr.batchAllReady("upstream", n)
		gs = append(gs, goal{fmt.Sprintf("batch of %d, first create → all Ready", n), mk, up, seconds, 0.7,
			func() string { return joinWhere(pr.batchFloorWhere(n, 0.7*up), pr.cpuWhere(n, c.cores)) }})
	}
	gs = append(gs, goal{"agent's share of create → Running (p50 minus the CRI floor p50)",
		pr.agentShare("minikubelet"), pr.agentShare("upstream"), seconds, 0.5, nil})
	ex := func(a string) float64 { return mean(pr.pooled(a, exitAdjusted)) }
	gs = append(gs, goal{"container exit → terminated state seen, mean", ex("minikubelet"), ex("upstream"), seconds, 0.2, pr.exitWhere})
	if pr.Profile.Footprint {
		rss := func(which func(RunResult) *Footprint) func(string) float64 {
			return func(a string) float64 { return median(pr.perRun(a, footprintValue(rssOf, which))) }
		}
		idleUp := rss(idleOf)("upstream")
		gs = append(gs, goal{"idle RSS", rss(idleOf)("minikubelet"), idleUp, mib, 0.35,
			func() string { return joinWhere(pr.rssWhere(idleOf), pr.clientFloorWhere(0.35*idleUp)) }})
		gs = append(gs, goal{fmt.Sprintf("RSS with %d pods", c.FootprintPods), rss(loadedOf)("minikubelet"), rss(loadedOf)("upstream"), mib, 0.5,
			func() string { return pr.rssWhere(loadedOf) }})
	}
	return gs
}

// cpuWhere: how the machine's busy time while batches of n were created split between the
// agent, the runtime and the API server (medians of runs).
func (pr *ProfileResult) cpuWhere(n, cores int) string {
	var parts []string
	for _, a := range []string{"minikubelet", "upstream"} {
		var busy, share, agent, runtime, api []float64
		for _, r := range pr.runsOf(a) {
			b := batchOf(r, n)
			if b == nil || b.CPUCreate == nil {
				continue
			}
			m := b.CPUCreate
			busy = append(busy, total(m))
			if cores > 0 && b.AllReady > 0 {
				share = append(share, 100*total(m)/(b.AllReady*float64(cores)))
			}
			agent = append(agent, m["agent"])
			runtime = append(runtime, m["containerd (with CNI plugins)"]+m["shims (with runc)"])
			api = append(api, m["kube-apiserver"]+m["etcd"])
		}
		if len(busy) == 0 {
			return ""
		}
		kept := ""
		if len(share) > 0 {
			kept = fmt.Sprintf(" (%.0f %% of its %d cores)", median(share), cores)
		}
		parts = append(parts, fmt.Sprintf("with %s the machine was busy %.1f CPU-s%s, of which the agent %.1f, containerd and its shims %.1f, kube-apiserver and etcd %.1f",
			a, median(busy), kept, median(agent), median(runtime), median(api)))
	}
	return strings.Join(parts, "; ") + " (medians of runs; table: CPU seconds by process)"
}

// joinWhere joins the where-it-goes parts that have something to say.
func joinWhere(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// exitShare is the mean, over an agent's exit samples, of the time from the runtime
// showing the exit to the terminated state seen: what the agent and the API took.
func (pr *ProfileResult) exitShare(agent string) float64 {
	var d []float64
	for _, r := range pr.runsOf(agent) {
		if len(r.ExitToRuntime) != len(r.ExitToStatus) {
			continue // a run from before the runtime's part was measured
		}
		for i, v := range r.ExitToStatus {
			d = append(d, v-r.ExitToRuntime[i])
		}
	}
	return mean(d)
}

// exitWhere splits the exit goal's time into the runtime's part and the agents'.
func (pr *ProfileResult) exitWhere() string {
	rt := func(a string) float64 {
		return mean(pr.pooled(a, func(r RunResult) []float64 { return r.ExitToRuntime })) - appExitDelay
	}
	mk, up := pr.exitShare("minikubelet"), pr.exitShare("upstream")
	if math.IsNaN(mk) || math.IsNaN(up) || up <= 0 {
		return ""
	}
	return fmt.Sprintf("the runtime itself showed the exit %s (minikubelet's runs) and %s (upstream's) after the container exited (CRI status polled every 5 ms); what came after it, the agent's part and the API's, took %s against %s (%.2f)",
		format(rt("minikubelet"), seconds), format(rt("upstream"), seconds), format(mk, seconds), format(up, seconds), mk/up)
}

// batchFloorWhere compares a batch goal with the runtime's own time for the batch: below
// it no agent can go.
func (pr *ProfileResult) batchFloorWhere(n int, target float64) string {
	f := pr.batchFloorOf(n)
	if f == nil || math.IsNaN(target) {
		return ""
	}
	reach := fmt.Sprintf("the goal (%s) leaves %s above it for the API and the agent", format(target, seconds), format(target-f.AllStarted, seconds))
	if target <= f.AllStarted {
		reach = fmt.Sprintf("the goal (%s) is below it, out of any agent's reach", format(target, seconds))
	}
	mk, up := pr.batchShare("minikubelet", n), pr.batchShare("upstream", n)
	return fmt.Sprintf("the runtime alone, with no agent, starts the batch in %s (CRI batch floor); %s; above the floor minikubelet takes %s, upstream %s, ratio %s",
		format(f.AllStarted, seconds), reach, format(mk, seconds), format(up, seconds), ratio(mk, up))
}

// clientFloorWhere compares an RSS goal with a client-go program that does nothing but
// watch the node's pods.
func (pr *ProfileResult) clientFloorWhere(target float64) string {
	f := pr.ClientFloor
	if f == nil || math.IsNaN(target) {
		return ""
	}
	reach := fmt.Sprintf("the goal (%s) leaves %s for all the rest of an agent", format(target, mib), format(target-f.RSSMiB, mib))
	if target <= f.RSSMiB {
		reach = fmt.Sprintf("the goal (%s) is below it, out of reach of any agent built on client-go", format(target, mib))
	}
	return fmt.Sprintf("a client-go program with one informer on the node's pods and nothing else (test/cmd/clientfloor) has an RSS of %s (anonymous %s, file %s, of read-only segments of %s); %s",
		format(f.RSSMiB, mib), format(f.AnonMiB, mib), format(f.FileMiB, mib), format(f.ImageMiB, mib), reach)
}

// deleteWhere: the machine's CPU time, by process group, while the API server removed a
// batch (first delete → last DELETED event), for the delete rows.
func (pr *ProfileResult) deleteWhere(n int) string {
	var parts []string
	for _, a := range []string{"minikubelet", "upstream"} {
		var busy, runtime, api []float64
		for _, r := range pr.runsOf(a) {
			if b := batchOf(r, n); b != nil && b.CPURemoved != nil {
				m := b.CPURemoved
				busy = append(busy, total(m))
				runtime = append(runtime, m["containerd (with CNI plugins)"]+m["shims (with runc)"])
				api = append(api, m["kube-apiserver"]+m["etcd"])
			}
		}
		if len(busy) == 0 {
			return ""
		}
		parts = append(parts, fmt.Sprintf("with %s %.2f CPU-s, of which containerd and its shims (the agent's kill signals run runc) %.2f, kube-apiserver and etcd %.2f",
			a, median(busy), median(runtime), median(api)))
	}
	return fmt.Sprintf("batch of %d: while the API server removed the batch (first delete → last DELETED event) the machine was busy %s (medians of runs)", n, strings.Join(parts, "; "))
}

// rssWhere splits both agents' RSS in a footprint window into anonymous and file pages.
func (pr *ProfileResult) rssWhere(which func(RunResult) *Footprint) string {
	v := func(a string, f func(*Footprint) float64) float64 {
		return median(pr.perRun(a, footprintValue(f, which)))
	}
	img := func(a string) float64 {
		return median(pr.perRun(a, func(r RunResult) float64 { return nanIfZero(r.ImageMiB) }))
	}
	mkAnon, upAnon := v("minikubelet", anonOf), v("upstream", anonOf)
	if math.IsNaN(mkAnon) {
		return ""
	}
	mkFile, upFile := v("minikubelet", fileOf), v("upstream", fileOf)
	return fmt.Sprintf("anonymous pages (heap, stacks) %s vs %s, ratio %s; file pages (the binary as mapped in) %s vs %s, ratio %s, of read-only segments of %s vs %s",
		format(mkAnon, mib), format(upAnon, mib), ratio(mkAnon, upAnon),
		format(mkFile, mib), format(upFile, mib), ratio(mkFile, upFile),
		format(img("minikubelet"), mib), format(img("upstream"), mib))
}

// deleteRowName names the delete (grace 0) → DELETED rows of the batch of n (before the
// percentile).
func deleteRowName(n int) string {
	return fmt.Sprintf("(3) batch of %d: delete (grace 0) → DELETED event", n)
}

func (pr *ProfileResult) goals(c config) string {
	var b strings.Builder
	for _, g := range pr.goalList(c) {
		fmt.Fprintf(&b, "- %s ≤ %.2f × upstream's: %s vs %s, ratio %s — %s\n",
			g.name, g.limit, format(g.mk, g.u), format(g.up, g.u), ratio(g.mk, g.up), verdict(g.met()))
		if g.where != nil && !g.met() {
			if w := g.where(); w != "" {
				fmt.Fprintf(&b, "  - where it goes: %s\n", w)
			}
		}
	}
	var over []string
	deleteOver := map[int]bool{} // batch sizes with a delete row over
	for _, r := range pr.rows(c) {
		if w := r.worse(); !r.schedule && !r.runtime && w > 1.05 {
			over = append(over, fmt.Sprintf("%s (%.2f)", r.name, w))
			for _, n := range c.Batches {
				if strings.HasPrefix(r.name, deleteRowName(n)+",") {
					deleteOver[n] = true
				}
			}
		}
	}
	fmt.Fprintf(&b, "- no row more than 1.05 × worse than upstream's (schedule and runtime rows excepted; for pods/s upstream / minikubelet) — %s",
		verdict(len(over) == 0))
	if len(over) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(over, "; "))
	}
	b.WriteString("\n")
	for _, n := range c.Batches {
		if !deleteOver[n] {
			continue
		}
		if w := pr.deleteWhere(n); w != "" {
			fmt.Fprintf(&b, "  - where it goes: %s\n", w)
		}
	}
	return b.String()
}

func (pr *ProfileResult) perRunTable() string {
	var b strings.Builder
	b.WriteString("| run | node | wall | create → Running p50 | first batch all Ready | exit → status mean | restarts seen at | idle RSS | idle CPU | RSS with pods |\n|---|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for i, r := range pr.Runs {
		var rs []string
		for _, t := range r.CrashRestarts {
			rs = append(rs, fmt.Sprintf("%.1f", t))
		}
		restarts := "—"
		if len(rs) > 0 {
			restarts = strings.Join(rs, ", ") + " s"
		}
		batch := math.NaN()
		if len(r.Batches) > 0 {
			batch = r.Batches[0].AllReady
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, r.Node, r.Wall,
			format(median(r.SeqRunning), seconds), format(batch, seconds), format(mean(r.ExitToStatus), seconds), restarts,
			format(footprintValue(rssOf, idleOf)(r), mib), format(footprintValue(cpuOf, idleOf)(r), percent),
			format(footprintValue(rssOf, loadedOf)(r), mib))
	}
	return b.String()
}

// mapCol is one column of a table whose rows are the keys of a map each run gives.
type mapCol struct {
	name string
	get  func(RunResult) map[string]float64
}

// criTable has a row per operation_type either agent called: the median over runs of the
// calls for one pod start and, per pod, for each batch created and deleted.
func (pr *ProfileResult) criTable(c config) string {
	cols := []mapCol{{"one pod", func(r RunResult) map[string]float64 { return r.CRISingle }}}
	for _, n := range c.Batches {
		cols = append(cols, mapCol{fmt.Sprintf("batch of %d, per pod", n), func(r RunResult) map[string]float64 {
			if b := batchOf(r, n); b != nil && b.CRICalls != nil {
				return scaled(b.CRICalls, n)
			}
			return nil
		}})
	}
	return pr.mapTable("operation_type", cols, formatCount)
}

// cpuTable: CPU seconds by process group while each batch was created and deleted.
func (pr *ProfileResult) cpuTable(c config) string {
	var cols []mapCol
	for _, n := range c.Batches {
		for _, phase := range []struct {
			name string
			get  func(*BatchResult) map[string]float64
		}{{"create", func(b *BatchResult) map[string]float64 { return b.CPUCreate }},
			{"delete, until DELETED", func(b *BatchResult) map[string]float64 { return b.CPURemoved }},
			{"delete", func(b *BatchResult) map[string]float64 { return b.CPUDelete }}} {
			cols = append(cols, mapCol{fmt.Sprintf("batch of %d, %s", n, phase.name), func(r RunResult) map[string]float64 {
				if b := batchOf(r, n); b != nil {
					return phase.get(b)
				}
				return nil
			}})
		}
	}
	return pr.mapTable("process", cols, func(v float64) string { return fmt.Sprintf("%.2f", v) })
}

// mapTable has a row per key any run gave and a last row of the totals, and per column
// the median over each agent's runs that measured it (a key missing from a measured run
// counts 0; "total" sums each run's column first); "·" marks a zero; "" if no run measured
// any column.
func (pr *ProfileResult) mapTable(head string, cols []mapCol, format func(float64) string) string {
	keys := map[string]bool{}
	for _, r := range pr.Runs {
		for _, c := range cols {
			for k := range c.get(r) {
				keys[k] = true
			}
		}
	}
	if len(keys) == 0 {
		return ""
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	agents := []string{"minikubelet", "upstream"}
	value := func(a string, c mapCol, key string) float64 {
		var xs []float64
		for _, r := range pr.runsOf(a) {
			m := c.get(r)
			if m == nil {
				continue
			}
			if key == "" {
				xs = append(xs, total(m))
			} else {
				xs = append(xs, m[key])
			}
		}
		return median(xs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", head)
	sep := "|---|"
	for _, c := range cols {
		fmt.Fprintf(&b, " %s: mk | %s: up |", c.name, c.name)
		sep += "---:|---:|"
	}
	b.WriteString("\n" + sep + "\n")
	for _, key := range append(names, "") {
		label := key
		if key == "" {
			label = "**total**"
		}
		fmt.Fprintf(&b, "| %s |", label)
		for _, c := range cols {
			for _, a := range agents {
				v := value(a, c, key)
				s := format(v)
				if key != "" && v == 0 {
					s = "·"
				}
				fmt.Fprintf(&b, " %s |", s)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (pr *ProfileResult) floorTable() string {
	var b strings.Builder
	col := func(f func(FloorSample) float64) []float64 {
		var out []float64
		for _, s := range pr.Floor {
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

// batchFloorTable: per batch size, the time to start it straight through CRI and the CPU
// seconds by process group meanwhile ("" if none was measured).
func (pr *ProfileResult) batchFloorTable() string {
	if len(pr.BatchFloors) == 0 {
		return ""
	}
	groups := []string{"containerd (with CNI plugins)", "shims (with runc)", otherCPU}
	var b strings.Builder
	b.WriteString("| batch | first call → all started | CPU-s: " + strings.Join(groups, " | CPU-s: ") + " | CPU-s: total |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range pr.BatchFloors {
		fmt.Fprintf(&b, "| %d | %s |", f.Pods, format(f.AllStarted, seconds))
		for _, g := range groups {
			fmt.Fprintf(&b, " %.2f |", f.CPU[g])
		}
		fmt.Fprintf(&b, " %.2f |\n", total(f.CPU))
	}
	return b.String()
}

func markdown(res *Results) string {
	e, c := res.Env, res.Config
	c.cores = e.Cores
	var b strings.Builder
	fmt.Fprintf(&b, "# minikubelet vs upstream kubelet — %s\n\n", res.Date)
	var names []string
	for _, pr := range res.Profiles {
		names = append(names, fmt.Sprintf("%s (%.1f min)", pr.Profile.Name, pr.Elapsed/60))
	}
	fmt.Fprintf(&b, "`make bench`: one test bed per profile (%s), the agents alternated in each (minikubelet, upstream, ... %d runs each), "+
		"each run on a fresh node with an empty runtime. Raw samples: `%s.json`. Took %.1f min.\n\n",
		strings.Join(names, ", "), c.Rounds, reportName(res.Date), res.Elapsed/60)
	b.WriteString("## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d cores; memory %.1f GiB; kernel %s\n", e.CPU, e.Cores, e.MemoryGiB, e.Kernel)
	fmt.Fprintf(&b, "- runtime: %s (the test bed's own instance, cgroup driver cgroupfs)\n", e.Containerd)
	dirty := ""
	if strings.HasSuffix(e.SourceCommit, "-dirty") {
		dirty = " (minikubelet was built from the working tree, uncommitted changes included)"
	}
	fmt.Fprintf(&b, "- Go: %s; source: %s%s\n", e.Go, e.SourceCommit, dirty)
	fmt.Fprintf(&b, "- minikubelet: %s (test bed defaults, --v=2; per-pod QoS cgroups under cgroup root %s, maxPods %d)\n", e.Minikubelet, e.CgroupRoot, c.MaxPods)
	fmt.Fprintf(&b, "- upstream: %s (test bed configuration, --v=1, generic PLEG; its defaults cgroupsPerQOS true and enforceNodeAllocatable [pods] "+
		"under cgroupRoot %s, maxPods %d; failCgroupV1 false for this cgroup v1 machine)\n\n", e.Upstream, e.CgroupRoot, c.MaxPods)
	b.WriteString("## Goals (issue 18), minikubelet / upstream\n\n")
	for _, pr := range res.Profiles {
		fmt.Fprintf(&b, "Profile **%s** (%s):\n\n", pr.Profile.Name, pr.Profile.describe())
		b.WriteString(pr.goals(c))
		b.WriteString("\n")
	}
	b.WriteString("## Results\n\n")
	fmt.Fprintf(&b, "Latencies are measured from just before the API call to the moment a pod watch delivered the event "+
		"(time.Now() in the watcher). Percentiles pool the samples of all runs (nearest rank); single per-run figures are the "+
		"median of the runs. Lower is better except pods/s. Rows marked \"schedule row\" follow upstream's own back-off timing; \"runtime row\"s time the runtime alone, beside each agent.\n\n")
	for _, pr := range res.Profiles {
		fmt.Fprintf(&b, "### Profile %s: %s\n\n", pr.Profile.Name, pr.Profile.describe())
		b.WriteString(pr.table(c))
		fmt.Fprintf(&b, "\n#### %s: per run\n\n", pr.Profile.Name)
		b.WriteString(pr.perRunTable())
		fmt.Fprintf(&b, "\n#### %s: CRI calls by operation_type (each agent's kubelet_runtime_operations_duration_seconds counts; the agents name operations alike only in part; · none)\n\n", pr.Profile.Name)
		b.WriteString(pr.criTable(c))
		if t := pr.cpuTable(c); t != "" {
			fmt.Fprintf(&b, "\n#### %s: CPU seconds by process while a batch was created (first create → all Ready) and deleted (first delete → the last DELETED event, and → no sandbox ready); median of runs\n\n", pr.Profile.Name)
			b.WriteString(t)
		}
		fmt.Fprintf(&b, "\n#### %s: (7) floor, sandbox + container start straight through CRI, no kubelet (%d samples)\n\n", pr.Profile.Name, len(pr.Floor))
		b.WriteString(pr.floorTable())
		if t := pr.batchFloorTable(); t != "" {
			fmt.Fprintf(&b, "\n#### %s: (7) floor, batches started at once straight through CRI, no kubelet\n\n", pr.Profile.Name)
			b.WriteString(t)
		}
		if f := pr.ClientFloor; f != nil {
			fmt.Fprintf(&b, "\n#### %s: (8) floor, a client-go program with one pod informer and nothing else\n\n", pr.Profile.Name)
			fmt.Fprintf(&b, "RSS %s (anonymous %s, file %s; read-only segments %s), CPU %s of one core, over %.0f s.\n",
				format(f.RSSMiB, mib), format(f.AnonMiB, mib), format(f.FileMiB, mib), format(f.ImageMiB, mib), format(f.CPUPercent(), percent), f.Window)
		}
		b.WriteString("\n")
	}
	if len(res.HeapTop) > 0 {
		fmt.Fprintf(&b, "### minikubelet's heap after the idle window (`%s`, last run; `go tool pprof -top -sample_index=inuse_space`)\n\n```\n%s\n```\n\n",
			res.HeapFile, strings.Join(res.HeapTop, "\n"))
	}
	if len(res.LoadedHeapTop) > 0 {
		fmt.Fprintf(&b, "### minikubelet's heap with the footprint pods on the node (`%s`)\n\n```\n%s\n```\n\n",
			res.LoadedHeapFile, strings.Join(res.LoadedHeapTop, "\n"))
	}
	b.WriteString(method(res))
	return b.String()
}

func method(res *Results) string {
	c := res.Config
	var b strings.Builder
	b.WriteString("## Method\n\n")
	for _, pr := range res.Profiles {
		fmt.Fprintf(&b, "- Profile %s: %s; its test bed started in %.0f s.\n", pr.Profile.Name, pr.Profile.describe(), pr.BedStart)
	}
	large := "every round"
	if c.LargeRounds < c.Rounds {
		large = fmt.Sprintf("the first %d of the %d rounds only (to keep the run time sane)", c.LargeRounds, c.Rounds)
	}
	var batches []string
	for _, n := range c.Batches {
		batches = append(batches, fmt.Sprint(n))
	}
	fmt.Fprintf(&b, `
1. %d busybox `+"`sleep 3600`"+` pods created one after another; each waited for until Ready. Then one more pod, with the
   agent's /metrics (its kubelet API, with the bed's admin client certificate) read before its create and once the watch
   saw it Running: the delta of kubelet_runtime_operations_duration_seconds_count per operation_type.
2. Batches of %s such pods created at once (one goroutine each, client QPS not limiting); the batches after the first run in %s.
3. Each batch deleted at once with gracePeriodSeconds 0 (the API object goes at once; the runtime time shows the agent's
   teardown). The CRI calls of 2 and 3 are counted from before the first create to when no sandbox of the batch was ready.
   CPU by process: utime+stime+cutime+cstime of the agent, containerd, the shims, kube-apiserver, etcd, the scheduler and
   controller-manager and the bench from /proc/<pid>/stat, and the rest of /proc/stat's busy time as "other".
4. %d test-app pods (restartPolicy Never) asked in turn to exit with GET /exit?code=3, each after a random delay uniform over
   [0, %v) (upstream's relist period), so that neither agent's periodic work is in phase with the samples; the app answers
   and exits 50 ms later. Mean and percentiles over all samples. Beside each sample the bench polls the runtime's CRI
   ContainerStatus of the container every 5 ms: when it shows the container exited is the runtime's part, which no agent can
   cut; the rest is the agent's and the API's.
5. In the last profile, alongside 4, a busybox pod `+"`sh -c 'exit 1'`"+` with restartPolicy Always; restartCount 1, 2, 3 as the watch saw them.
6. In the last profile: the agent's VmRSS (sampled every second, mean; with its parts RssAnon and RssFile) and utime+stime over %v
   with no pods, and the size of its binary's read-only ELF segments, which bounds RssFile; then its go_memstats_*
   and (minikubelet) /debug/pprof/heap; then, in %s, %d busybox sleep pods created at once on the node (maxPods %d): first create
   → all Running, and the same window once all were Ready.
7. Once per profile, with no agent running: RunPodSandbox + CreateContainer + StartContainer of busybox sleep with minikubelet's CRI
   configs and the cgroup parent a BestEffort pod gets from both agents (%s/kubepods/besteffort/pod<uid>): one warm-up, then %d pods
   one after another as in 1 (each right after the last one started, all kept running until the last one started: the runtime's calls
   grow slower with each running pod);
   then each batch size started at once (one goroutine per pod, as the agents' pod workers): first call → the last
   StartContainer returned. An agent's share of a batch is its first create → all Ready less this.
8. In the last profile, with no agent running: test/cmd/clientfloor, a client-go clientset with one informer on a node's pods
   and nothing else, measured as in 6 for up to %v once synced: the memory any node agent built on client-go starts from.

Both agents and the floor use the same cgroup layout under a cgroup root of the bench's own (the upstream kubelet kills unknown
processes in pod cgroups under its root, so it must not share the machine's /kubepods with other test beds); the root is created
before each run and removed after. Between workloads all pods are deleted, their sandboxes waited for until stopped and then removed,
so every workload starts from an empty runtime. Between runs the agent is stopped, its Node deleted and the runtime emptied through CRI.
`, c.SeqPods, strings.Join(batches, " and "), large, c.ExitSamples, c.ExitDelayMax, c.Idle, large, c.FootprintPods, c.MaxPods, cgroupRoot, c.SeqPods, clientFloorWindow)
	return b.String()
}
