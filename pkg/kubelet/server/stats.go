package server

import (
	"context"
	"net/http"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Stats is what the kubelet API serves stats from (*stats.Provider has it): it measures
// at each request.
type Stats interface {
	// Summary is /stats/summary's answer (only CPU and memory when asked).
	Summary(ctx context.Context, onlyCPUAndMemory bool) (*statsapi.Summary, error)
	// ResourceMetrics serves /metrics/resource, CadvisorMetrics /metrics/cadvisor.
	ResourceMetrics() http.Handler
	CadvisorMetrics() http.Handler
	// ClaimVolumeStats are the claims' measured volumes, each claim once
	// (kubelet_volume_stats_* in /metrics).
	ClaimVolumeStats(ctx context.Context) []statsapi.VolumeStats
}

// statsRoutes serves /stats/summary (GET and POST, as upstream), /metrics/resource and
// /metrics/cadvisor; they are nodes/stats and nodes/metrics to authorization (auth.go).
func (s *Server) statsRoutes(mux *http.ServeMux) {
	st := s.cfg.Stats
	if st == nil {
		return
	}
	mux.HandleFunc("GET /stats/summary", s.statsSummary)
	mux.HandleFunc("POST /stats/summary", s.statsSummary)
	mux.Handle("GET /metrics/resource", st.ResourceMetrics())
	mux.Handle("GET /metrics/cadvisor", st.CadvisorMetrics())
}

// statsSummary: only_cpu_and_memory counts when given once as "true" (query or form);
// other parameters are ignored, as upstream does.
func (s *Server) statsSummary(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		httpError(w, "Internal Error: parse form failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	v, found := r.Form["only_cpu_and_memory"]
	sum, err := s.cfg.Stats.Summary(r.Context(), found && len(v) == 1 && v[0] == "true")
	if err != nil {
		httpError(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, sum)
}
