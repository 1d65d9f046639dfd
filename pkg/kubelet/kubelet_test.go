package kubelet

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/config"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
)

// serverTLSBootstrap starts a serving certificate manager only with an API client: off, or
// standalone (the self-signed certificate then, see servingCertificate), there is none.
func TestServingCertificateWiring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := &config.Config{CertDir: t.TempDir()}
	client := fake.NewClientset()
	if m, err := servingCertificate(ctx, cfg, client, "n1", "n1", []string{"127.0.0.1"}); m != nil || err != nil {
		t.Errorf("serverTLSBootstrap off: %v %v, want no manager", m, err)
	}
	cfg.Kubelet.ServerTLSBootstrap = true
	if m, err := servingCertificate(ctx, cfg, nil, "n1", "n1", []string{"127.0.0.1"}); m != nil || err != nil {
		t.Errorf("standalone: %v %v, want no manager (self-signed)", m, err)
	}
	m, err := servingCertificate(ctx, cfg, client, "n1", "n1", []string{"127.0.0.1"})
	if err != nil || m == nil {
		t.Fatalf("with a client: %v %v, want a manager", m, err)
	}
	// It asks at once.
	for {
		list, _ := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if len(list.Items) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no CSR")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// As upstream's: events have a client of their own (eventRecordQPS 0: no limit), so they
// never take the status writes' kubeAPIQPS; the heartbeat client is not limited and times
// out after nodeStatusUpdateFrequency, at most the Lease's duration.
func TestClientConfigs(t *testing.T) {
	base := &rest.Config{Host: "https://api", UserAgent: "minikubelet/test"}
	for _, tc := range []struct {
		name                 string
		eventQPS             int32
		freq                 time.Duration
		wantEvents           float32
		wantHeartbeatTimeout time.Duration
	}{
		{"defaults", 50, 10 * time.Second, 50, 10 * time.Second},
		{"events unlimited", 0, 10 * time.Second, -1, 10 * time.Second},
		{"status updates slower than the Lease", 5, time.Minute, 5, 40 * time.Second},
	} {
		k := &kubeletv1beta1.KubeletConfiguration{KubeAPIQPS: new(int32(7)), KubeAPIBurst: 9, EventRecordQPS: new(tc.eventQPS), EventBurst: 11,
			NodeStatusUpdateFrequency: metav1.Duration{Duration: tc.freq}, NodeLeaseDurationSeconds: 40}
		api, hb, ev := clientConfigs(base, k)
		if api.QPS != 7 || api.Burst != 9 {
			t.Errorf("%s: API client %v/%d, want 7/9", tc.name, api.QPS, api.Burst)
		}
		if ev.QPS != tc.wantEvents || ev.Burst != 11 {
			t.Errorf("%s: event client %v/%d, want %v/11", tc.name, ev.QPS, ev.Burst, tc.wantEvents)
		}
		if hb.QPS != -1 || hb.Timeout != tc.wantHeartbeatTimeout {
			t.Errorf("%s: heartbeat client QPS %v timeout %v, want -1 and %v", tc.name, hb.QPS, hb.Timeout, tc.wantHeartbeatTimeout)
		}
		for _, c := range []*rest.Config{api, hb, ev} {
			if c.Host != base.Host || c.UserAgent != base.UserAgent || c == base {
				t.Errorf("%s: %+v is not a copy of the node's config", tc.name, c)
			}
		}
	}
	if base.QPS != 0 || base.Timeout != 0 {
		t.Errorf("the node's config changed: %+v", base)
	}
}

// The orphan sweep removes a pod's cgroup only once every source has delivered its pods
// and neither a worker nor the runtime has the pod; volumes left keep it.
func TestPodCgroupUse(t *testing.T) {
	yes := func(types.UID) bool { return true }
	no := func(types.UID) bool { return false }
	for _, c := range []struct {
		name                      string
		synced                    bool
		workers, runtime, volumes func(types.UID) bool
		want                      cm.PodUse
	}{
		{"sources not synced", false, no, no, no, cm.PodInUse},
		{"a worker holds it", true, yes, no, no, cm.PodInUse},
		{"the runtime still has it", true, no, yes, yes, cm.PodInUse},
		{"volumes left", true, no, no, yes, cm.PodVolumesLeft},
		{"gone", true, no, no, no, cm.PodGone},
	} {
		use := podCgroupUse(func() bool { return c.synced }, c.workers, c.runtime, c.volumes)
		if got := use("u1"); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
