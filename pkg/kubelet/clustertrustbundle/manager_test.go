package clustertrustbundle

import (
	"context"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/minikubelet/minikubelet/pkg/kubelet/node/csrtesting"
)

// caPEM is a new CA certificate, PEM (each call a new key, so a different certificate).
func caPEM(t *testing.T) string { return string(csrtesting.NewCA(t).PEM) }

func ctb(name, signer string, labels map[string]string, pems ...string) *certificatesv1.ClusterTrustBundle {
	return &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: strings.Join(pems, "")}}
}

// certs is the set of certificates (DER) in a PEM answer; each must appear once.
func certs(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" || len(b.Headers) > 0 || out[string(b.Bytes)] {
			t.Fatalf("block %q headers %v (or a duplicate): want each certificate once, as a bare CERTIFICATE", b.Type, b.Headers)
		}
		out[string(b.Bytes)] = true
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		t.Fatalf("text after the blocks: %q", data)
	}
	return out
}

func der(t *testing.T, p string) string {
	b, _ := pem.Decode([]byte(p))
	return string(b.Bytes)
}

func TestTrustAnchors(t *testing.T) {
	a, b, c, d := caPEM(t), caPEM(t), caPEM(t), caPEM(t)
	client := fake.NewClientset(
		ctb("plain", "", nil, a, "# a comment between blocks\n", b),
		ctb("one-alive", "example.com/one", map[string]string{"alive": "true"}, a, c),
		ctb("one-dead", "example.com/one", map[string]string{"alive": "false"}, d),
		ctb("two-alive", "example.com/two", map[string]string{"alive": "true"}, b),
	)
	m := New(client)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	for !m.runCtxSet() {
		time.Sleep(time.Millisecond)
	}
	if n := len(client.Actions()); n != 0 {
		t.Fatalf("%d API calls before any request: the informer must start on first use", n)
	}

	match := func(labels map[string]string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: labels}
	}
	for _, tc := range []struct {
		name    string
		get     func() ([]byte, error)
		want    []string // certificates; nil with wantErr
		wantErr string
	}{
		{"by name, comments dropped", func() ([]byte, error) { return m.ByName(ctx, "plain", false) }, []string{a, b}, ""},
		{"missing name", func() ([]byte, error) { return m.ByName(ctx, "nope", false) }, nil, "while getting ClusterTrustBundle"},
		{"missing name, optional", func() ([]byte, error) { return m.ByName(ctx, "nope", true) }, []string{}, ""},
		{"signer and labels, deduplicated across bundles", func() ([]byte, error) {
			return m.BySigner(ctx, "example.com/one", &metav1.LabelSelector{}, false)
		}, []string{a, c, d}, ""},
		{"signer and a label", func() ([]byte, error) {
			return m.BySigner(ctx, "example.com/one", match(map[string]string{"alive": "true"}), false)
		}, []string{a, c}, ""},
		{"nil selector matches nothing", func() ([]byte, error) { return m.BySigner(ctx, "example.com/one", nil, false) }, nil,
			"combination of signerName and labelSelector matched zero ClusterTrustBundles"},
		{"nil selector, optional", func() ([]byte, error) { return m.BySigner(ctx, "example.com/one", nil, true) }, []string{}, ""},
		{"labels of another signer's bundle", func() ([]byte, error) {
			return m.BySigner(ctx, "example.com/two", match(map[string]string{"alive": "false"}), false)
		}, nil, "matched zero"},
		{"bad selector", func() ([]byte, error) {
			return m.BySigner(ctx, "example.com/one", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Sometimes"}}}, false)
		}, nil, "while parsing label selector"},
	} {
		got, err := tc.get()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %q, %v; want an error with %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		have := certs(t, got)
		if len(have) != len(tc.want) {
			t.Errorf("%s: %d certificates, want %d", tc.name, len(have), len(tc.want))
		}
		for _, w := range tc.want {
			if !have[der(t, w)] {
				t.Errorf("%s: a certificate is missing", tc.name)
			}
		}
	}

	first, _ := m.BySigner(ctx, "example.com/one", &metav1.LabelSelector{}, false)
	for range 5 {
		if again, _ := m.BySigner(ctx, "example.com/one", &metav1.LabelSelector{}, false); string(again) != string(first) {
			t.Fatal("the order changed between calls: it must stay while the kubelet runs")
		}
	}
}

func TestNotRunning(t *testing.T) {
	if _, err := New(fake.NewClientset()).ByName(context.Background(), "x", true); err == nil {
		t.Fatal("a manager that is not running answered")
	}
}

func (m *Manager) runCtxSet() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runCtx != nil
}
