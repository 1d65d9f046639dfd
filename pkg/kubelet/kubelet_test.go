package kubelet

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/minikubelet/minikubelet/config"
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
