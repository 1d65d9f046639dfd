package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeStats records how the summary was asked for.
type fakeStats struct {
	err        error
	onlyCPUMem []bool
}

func (f *fakeStats) Summary(_ context.Context, only bool) (*statsapi.Summary, error) {
	f.onlyCPUMem = append(f.onlyCPUMem, only)
	if f.err != nil {
		return nil, f.err
	}
	return &statsapi.Summary{Node: statsapi.NodeStats{NodeName: "n1"}, Pods: []statsapi.PodStats{}}, nil
}

func (f *fakeStats) ClaimVolumeStats(context.Context) []statsapi.VolumeStats {
	n := func(v uint64) *uint64 { return &v }
	return []statsapi.VolumeStats{{Name: "data", PVCRef: &statsapi.PVCReference{Name: "c", Namespace: "ns"},
		FsStats: statsapi.FsStats{CapacityBytes: n(100), AvailableBytes: n(60), UsedBytes: n(40), Inodes: n(10), InodesFree: n(7), InodesUsed: n(3)}}}
}

// TestVolumeStatsMetrics: a claim's volume is reported in upstream's series and help.
func TestVolumeStatsMetrics(t *testing.T) {
	want := `
# HELP kubelet_volume_stats_available_bytes [ALPHA] Number of available bytes in the volume
# TYPE kubelet_volume_stats_available_bytes gauge
kubelet_volume_stats_available_bytes{namespace="ns",persistentvolumeclaim="c"} 60
# HELP kubelet_volume_stats_capacity_bytes [ALPHA] Capacity in bytes of the volume
# TYPE kubelet_volume_stats_capacity_bytes gauge
kubelet_volume_stats_capacity_bytes{namespace="ns",persistentvolumeclaim="c"} 100
# HELP kubelet_volume_stats_inodes [ALPHA] Maximum number of inodes in the volume
# TYPE kubelet_volume_stats_inodes gauge
kubelet_volume_stats_inodes{namespace="ns",persistentvolumeclaim="c"} 10
# HELP kubelet_volume_stats_inodes_free [ALPHA] Number of free inodes in the volume
# TYPE kubelet_volume_stats_inodes_free gauge
kubelet_volume_stats_inodes_free{namespace="ns",persistentvolumeclaim="c"} 7
# HELP kubelet_volume_stats_inodes_used [ALPHA] Number of used inodes in the volume
# TYPE kubelet_volume_stats_inodes_used gauge
kubelet_volume_stats_inodes_used{namespace="ns",persistentvolumeclaim="c"} 3
# HELP kubelet_volume_stats_used_bytes [ALPHA] Number of used bytes in the volume
# TYPE kubelet_volume_stats_used_bytes gauge
kubelet_volume_stats_used_bytes{namespace="ns",persistentvolumeclaim="c"} 40
`
	if err := testutil.CollectAndCompare(volumeStatsCollector{&fakeStats{}}, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeStats) ResourceMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "resource") })
}

func (f *fakeStats) CadvisorMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "cadvisor") })
}

func statsServer(t *testing.T, st *fakeStats, allow func(authzv1.SubjectAccessReviewSpec) bool) *Server {
	t.Helper()
	k := testKubeletConfig(t)
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: allow}
	s := newTestServer(t, k, rv, nil)
	s.cfg.Stats = st
	s.handler = s.withAuth(s.routes())
	return s
}

func TestStatsSummaryHandler(t *testing.T) {
	for _, tc := range []struct {
		method, path, form string
		wantOnly           bool
	}{
		{"GET", "/stats/summary", "", false},
		{"GET", "/stats/summary?only_cpu_and_memory=true", "", true},
		{"GET", "/stats/summary?only_cpu_and_memory=true&x=1", "", true}, // unknown parameters are ignored
		{"GET", "/stats/summary?only_cpu_and_memory=1", "", false},       // only "true" counts
		{"GET", "/stats/summary?only_cpu_and_memory=true&only_cpu_and_memory=true", "", false},
		{"POST", "/stats/summary", "only_cpu_and_memory=true", true},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.form, func(t *testing.T) {
			st := &fakeStats{}
			s := statsServer(t, st, func(authzv1.SubjectAccessReviewSpec) bool { return true })
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.form))
			r.Header.Set("Authorization", "Bearer t")
			if tc.form != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			var sum statsapi.Summary
			if err := json.Unmarshal(w.Body.Bytes(), &sum); err != nil || w.Code != 200 || sum.Node.NodeName != "n1" {
				t.Fatalf("%d %s %v", w.Code, w.Body, err)
			}
			if len(st.onlyCPUMem) != 1 || st.onlyCPUMem[0] != tc.wantOnly {
				t.Errorf("only_cpu_and_memory seen as %v, want %v", st.onlyCPUMem, tc.wantOnly)
			}
		})
	}
}

func TestStatsSummaryError(t *testing.T) {
	s := statsServer(t, &fakeStats{err: errors.New("runtime down")}, func(authzv1.SubjectAccessReviewSpec) bool { return true })
	w := do(t, s.Handler(), "GET", "/stats/summary", "t")
	if w.Code != 500 || w.Body.String() != "Internal Error: runtime down" {
		t.Errorf("%d %q", w.Code, w.Body)
	}
}

// Stats are nodes/stats and the metrics nodes/metrics: a user with only one is refused
// the other.
func TestStatsAuthorization(t *testing.T) {
	allow := func(spec authzv1.SubjectAccessReviewSpec) bool {
		return spec.ResourceAttributes.Subresource == "metrics"
	}
	s := statsServer(t, &fakeStats{}, allow)
	for path, want := range map[string]int{"/stats/summary": 403, "/metrics/resource": 200, "/metrics/cadvisor": 200} {
		if w := do(t, s.Handler(), "GET", path, "t"); w.Code != want {
			t.Errorf("%s: %d %s, want %d", path, w.Code, w.Body, want)
		}
		if w := do(t, s.Handler(), "GET", path, ""); w.Code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, w.Code)
		}
	}
	if w := do(t, s.Handler(), "GET", "/metrics/cadvisor", "t"); w.Body.String() != "cadvisor" {
		t.Errorf("/metrics/cadvisor served %q", w.Body)
	}
}
