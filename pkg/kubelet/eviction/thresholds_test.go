package eviction

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestParseThresholds(t *testing.T) {
	cases := []struct {
		name    string
		s       Settings
		want    []string // Threshold.String(), in any order
		wantErr string
	}{
		{name: "upstream defaults", s: Settings{Hard: map[string]string{"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.inodesFree": "5%"}},
			want: []string{"memory.available<100Mi (grace period 0s)", "nodefs.available<10% (grace period 0s)", "imagefs.inodesFree<5% (grace period 0s)"}},
		{name: "allocatable threshold with enforcement of pods", s: Settings{Hard: map[string]string{"memory.available": "1Gi"}, EnforcePods: true},
			want: []string{"memory.available<1Gi (grace period 0s)", "allocatableMemory.available<1Gi (grace period 0s)"}},
		{name: "soft with grace", s: Settings{Soft: map[string]string{"memory.available": "2Gi"}, SoftGracePeriod: map[string]string{"memory.available": "30s"}},
			want: []string{"memory.available<2Gi (grace period 30s)"}},
		{name: "0% and 100% turn a threshold off", s: Settings{Hard: map[string]string{"nodefs.available": "0%", "imagefs.available": "100%"}}},
		{name: "containerfs is dropped", s: Settings{Hard: map[string]string{"containerfs.available": "10%"}}},
		{name: "unknown signal", s: Settings{Hard: map[string]string{"memory.free": "1Gi"}}, wantErr: "unsupported eviction signal memory.free"},
		{name: "negative quantity", s: Settings{Hard: map[string]string{"memory.available": "-1Mi"}}, wantErr: "eviction threshold memory.available must be positive: -1Mi"},
		{name: "zero quantity", s: Settings{Hard: map[string]string{"memory.available": "0"}}, wantErr: "must be positive"},
		{name: "malformed quantity", s: Settings{Hard: map[string]string{"memory.available": "lots"}}, wantErr: "quantities must match"},
		{name: "percentage over 100", s: Settings{Hard: map[string]string{"nodefs.available": "120%"}}, wantErr: "must be <= 100%"},
		{name: "negative percentage", s: Settings{Hard: map[string]string{"nodefs.available": "-5%"}}, wantErr: "must be >= 0%"},
		{name: "soft without grace", s: Settings{Soft: map[string]string{"memory.available": "2Gi"}}, wantErr: "grace period must be specified for the soft eviction threshold memory.available"},
		{name: "negative grace", s: Settings{Soft: map[string]string{"memory.available": "2Gi"}, SoftGracePeriod: map[string]string{"memory.available": "-1s"}}, wantErr: "must be a positive value"},
		{name: "negative reclaim", s: Settings{Hard: map[string]string{"memory.available": "1Gi"}, MinimumReclaim: map[string]string{"memory.available": "-1Mi"}}, wantErr: "negative eviction minimum reclaim specified for memory.available"},
		{name: "zero reclaim percentage", s: Settings{Hard: map[string]string{"memory.available": "1Gi"}, MinimumReclaim: map[string]string{"memory.available": "0%"}}, wantErr: "must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseThresholds(tc.s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || g.String() == w
				}
				if !found {
					t.Errorf("missing %s in %v", w, got)
				}
			}
		})
	}
}

func TestParseMinimumReclaim(t *testing.T) {
	ts, err := ParseThresholds(Settings{Hard: map[string]string{"nodefs.available": "10%"}, MinimumReclaim: map[string]string{"nodefs.available": "500Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].MinReclaim == nil || ts[0].MinReclaim.Quantity.String() != "500Mi" {
		t.Fatalf("minimum reclaim = %+v", ts[0].MinReclaim)
	}
}

func obsOf(sig Signal, avail, capacity string) observations {
	return observations{sig: {available: q(avail), capacity: q(capacity), time: time.Unix(1, 0)}}
}

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func TestValueOf(t *testing.T) {
	// As upstream: the float32 percentage times the capacity (10% of 10Gi is not 1Gi).
	if got := (Value{Percentage: 0.1}).Of(q("10Gi")); got.Value() != 1073741840 {
		t.Errorf("10%% of 10Gi = %v", got)
	}
	if got := (Value{Quantity: q("100Mi")}).Of(q("10Gi")); got.String() != "100Mi" {
		t.Errorf("100Mi of 10Gi = %v", got)
	}
}

// TestHardReservation: the hard memory.available and nodefs.available thresholds hold
// their value back from allocatable (a percentage of capacity, with upstream's float32
// percentage); soft thresholds, other signals and thresholds turned off do not.
func TestHardReservation(t *testing.T) {
	ts, err := ParseThresholds(Settings{
		Hard:            map[string]string{"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "15%", "pid.available": "0%"},
		Soft:            map[string]string{"memory.available": "1Gi"},
		SoftGracePeriod: map[string]string{"memory.available": "1m"},
		EnforcePods:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	capacity := v1.ResourceList{v1.ResourceMemory: resource.MustParse("8Gi"), v1.ResourceEphemeralStorage: resource.MustParse("1000")}
	got := HardReservation(ts, capacity)
	want := v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Mi"), v1.ResourceEphemeralStorage: *resource.NewQuantity(100, resource.BinarySI)}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for name, q := range want {
		if g := got[name]; g.Cmp(q) != 0 {
			t.Errorf("%s: %s, want %s", name, g.String(), q.String())
		}
	}
	if got := HardReservation(nil, capacity); len(got) != 0 {
		t.Errorf("no thresholds: %v", got)
	}
}
