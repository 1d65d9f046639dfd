package runtimecache

import "github.com/prometheus/client_golang/prometheus"

// exitSeen is minikubelet's own: from a container's exit (the runtime's finishedAt) to
// the cache holding it, which is when the pod's worker is woken.
var exitSeen = prometheus.NewHistogram(prometheus.HistogramOpts{
	Subsystem: "minikubelet",
	Name:      "container_exit_seen_seconds",
	Help:      "Time from a container's exit to its pod's worker being woken.",
	Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
})

// Collectors returns this package's metrics for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{exitSeen} }
