package server

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	kmetrics "github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
)

// metricsHandler serves /metrics: the runtime-operation metrics, pod start durations, the
// running pods and containers (counted from the runtime at scrape time), and the process
// and Go runtime metrics.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	reg.MustRegister(cri.Collectors()...)
	reg.MustRegister(runtimecache.Collectors()...)
	reg.MustRegister(kmetrics.Collectors()...)
	reg.MustRegister(&runtimeCollector{rt: s.cfg.Runtime, node: s.cfg.NodeName})
	if src := s.cfg.ServingCertificate; src != nil {
		reg.MustRegister(servingCertTTL(src))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// probeMetricsHandler serves /metrics/probes: the prober's results and durations.
func probeMetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(probe.Collectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Upstream's names and help texts.
var (
	runningPodsDesc = prometheus.NewDesc("kubelet_running_pods",
		"Number of pods that have a running pod sandbox", nil, nil)
	runningContainersDesc = prometheus.NewDesc("kubelet_running_containers",
		"Number of containers currently running", []string{"container_state"}, nil)
)

// servingCertTTL is upstream's kubelet_certificate_manager_server_ttl_seconds (name and
// help as upstream's): seconds until the serving certificate expires, +Inf without one.
func servingCertTTL(src CertificateSource) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Subsystem: "kubelet",
		Name:      "certificate_manager_server_ttl_seconds",
		Help: "Gauge of the shortest TTL (time-to-live) of the Kubelet's serving certificate. " +
			"The value is in seconds until certificate expiry (negative if already expired). " +
			"If serving certificate is invalid or unused, the value will be +INF.",
	}, func() float64 {
		if c := src.Current(); c != nil && c.Leaf != nil {
			return math.Trunc(time.Until(c.Leaf.NotAfter).Seconds())
		}
		return math.Inf(1)
	})
}

// runtimeCollector counts this node's pods with a ready sandbox and its containers by state.
type runtimeCollector struct {
	rt   Runtime
	node string
}

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningPodsDesc
	ch <- runningContainersDesc
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape has no context of its own; bound the runtime calls.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sel := map[string]string{cri.LabelNode: c.node}

	sbs, err := c.rt.ListSandboxes(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: sel, State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runningPodsDesc, err)
	} else {
		pods := map[string]bool{}
		for _, sb := range sbs {
			pods[sb.Labels[cri.LabelPodUID]] = true
		}
		ch <- prometheus.MustNewConstMetric(runningPodsDesc, prometheus.GaugeValue, float64(len(pods)))
	}

	cts, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runningContainersDesc, err)
		return
	}
	counts := map[cri.ContainerState]int{cri.StateCreated: 0, cri.StateRunning: 0, cri.StateExited: 0, cri.StateUnknown: 0}
	for _, ct := range cts {
		counts[cri.StateOf(ct.State)]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(runningContainersDesc, prometheus.GaugeValue, float64(n), string(state))
	}
}
