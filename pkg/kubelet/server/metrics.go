package server

import (
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minikubelet/minikubelet/pkg/cri"
	kmetrics "github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
)

// metricsHandler serves /metrics: the runtime-operation metrics, pod start durations, the
// running pods and containers (from the runtime state cache), and the process
// and Go runtime metrics.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	reg.MustRegister(cri.Collectors()...)
	reg.MustRegister(runtimecache.Collectors()...)
	reg.MustRegister(kmetrics.Collectors()...)
	reg.MustRegister(&runtimeCollector{rt: s.cfg.Runtime})
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

// runtimeCollector counts this node's pods with a ready sandbox and its containers by
// state, from the runtime state cache (a scrape makes no runtime call).
type runtimeCollector struct {
	rt Runtime
}

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningPodsDesc
	ch <- runningContainersDesc
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	pods, containers := c.rt.Counts()
	ch <- prometheus.MustNewConstMetric(runningPodsDesc, prometheus.GaugeValue, float64(pods))
	for state, n := range containers {
		ch <- prometheus.MustNewConstMetric(runningContainersDesc, prometheus.GaugeValue, float64(n), string(state))
	}
}
