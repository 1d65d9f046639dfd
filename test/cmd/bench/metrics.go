package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// criOpsMetric is the histogram both agents export per CRI call, by operation_type
// (upstream's names; minikubelet's are in pkg/cri).
const criOpsMetric = "kubelet_runtime_operations_duration_seconds"

// metricsSnapshot is what the bench reads from an agent's /metrics.
type metricsSnapshot struct {
	// Ops is the number of CRI calls so far per operation_type (the histogram's count).
	Ops map[string]float64
	// Go holds the go_memstats_* gauges and go_goroutines.
	Go map[string]float64
}

// parseMetrics reads the Prometheus text format.
func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return metricsSnapshot{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := metricsSnapshot{Ops: map[string]float64{}, Go: map[string]float64{}}
	if f := fams[criOpsMetric]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation_type" {
					s.Ops[l.GetValue()] += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "go_memstats_") && name != "go_goroutines" {
			continue
		}
		if ms := f.GetMetric(); len(ms) == 1 {
			switch {
			case ms[0].GetGauge() != nil:
				s.Go[name] = ms[0].GetGauge().GetValue()
			case ms[0].GetCounter() != nil:
				s.Go[name] = ms[0].GetCounter().GetValue()
			case ms[0].GetUntyped() != nil:
				s.Go[name] = ms[0].GetUntyped().GetValue()
			}
		}
	}
	return s, nil
}

// opsDelta is after - before per operation_type, zero deltas left out.
func opsDelta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for op, n := range after {
		if v := n - before[op]; v != 0 {
			d[op] = v
		}
	}
	return d
}

// scaled divides every value of m by n (calls per pod).
func scaled(m map[string]float64, n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = v / float64(n)
	}
	return out
}

func total(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// kubeletAPI reaches one node agent's kubelet API directly on the node address with the
// bed's admin client certificate (system:masters, which both agents' webhook
// authorization allows). The API server's node proxy cannot be used: it refuses
// minikubelet's loopback node address.
type kubeletAPI struct {
	base string
	hc   *http.Client
}

func newKubeletAPI(admin *rest.Config, port int) (*kubeletAPI, error) {
	tc, err := rest.TLSConfigFor(admin)
	if err != nil {
		return nil, err
	}
	// The agents serve self-signed certificates; this is loopback to the bench's own agent.
	tc.RootCAs, tc.InsecureSkipVerify = nil, true
	return &kubeletAPI{
		base: fmt.Sprintf("https://%s", net.JoinHostPort(testbed.NodeIP, strconv.Itoa(port))),
		hc:   &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}, nil
}

func (k *kubeletAPI) get(ctx context.Context, path, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubelet API GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("kubelet API GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubelet API GET %s: %s: %.200s", path, resp.Status, b)
	}
	return b, nil
}

// scrape reads the agent's /metrics.
func (k *kubeletAPI) scrape(ctx context.Context) (metricsSnapshot, error) {
	b, err := k.get(ctx, "/metrics", "text/plain;version=0.0.4")
	if err != nil {
		return metricsSnapshot{}, err
	}
	return parseMetrics(bytes.NewReader(b))
}

// saveHeap fetches minikubelet's heap profile (its kubelet API serves /debug/pprof,
// authorized as nodes/proxy) into file.
func (k *kubeletAPI) saveHeap(ctx context.Context, file string) error {
	b, err := k.get(ctx, "/debug/pprof/heap", "")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// heapTopOf is heapTop of a profile the report names, nil (and a log line) when there is none.
func heapTopOf(cfg config, name string) []string {
	if name == "" {
		return nil
	}
	top, err := heapTop(filepath.Join(cfg.Out, name))
	if err != nil {
		logf("bench: heap profile %s: %v", name, err)
	}
	return top
}

// heapTop is `go tool pprof -top` of a saved heap profile, inuse_space, 10 entries.
func heapTop(file string) ([]string, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=10", "-sample_index=inuse_space", file).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("go tool pprof: %v %s", err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		// File: and Build ID: name the binary, not the profile's content.
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") {
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}
