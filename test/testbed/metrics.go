package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metricsAPIService is the aggregated API metrics-server serves (`kubectl top`, HPA).
const metricsAPIService = "v1beta1.metrics.k8s.io"

// MetricsServer is metrics-server (test/tools/metrics-server) running beside the bed's API
// server, registered as v1beta1.metrics.k8s.io through kube-system/metrics-server, an
// ExternalName service naming loopback: the bed has no cluster network for a pod to be
// reached through.
type MetricsServer struct {
	b    *Bed
	proc *Proc
}

// BuildMetricsServer builds metrics-server once (hack/build-metrics-server.sh; cached by
// its pin) and returns the binary's path.
func BuildMetricsServer() (string, error) { return runScript("build-metrics-server.sh") }

// StartMetricsServer starts metrics-server, registers its API and waits until the API
// server serves it. Nodes are scraped every 15 s, its default.
func (b *Bed) StartMetricsServer(ctx context.Context) (*MetricsServer, error) {
	bin, err := BuildMetricsServer()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Its client identity (nodes/metrics on every kubelet, the API server's authn/authz
	// delegation) and its serving certificate.
	crt, key, err := b.PKI.Issue("metrics-server-client", "system:metrics-server", []string{"system:masters"}, nil)
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(b.Dir, "metrics-server.kubeconfig")
	if err := WriteKubeconfig(kc, b.APIServerURL, b.PKI.CAFile(), crt, key); err != nil {
		return nil, err
	}
	srvCrt, srvKey, err := b.PKI.Issue("metrics-server", "metrics-server", nil, []string{"127.0.0.1", "localhost"})
	if err != nil {
		return nil, err
	}
	p, err := b.start("metrics-server", bin, []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + srvCrt, "--tls-private-key-file=" + srvKey,
		// The bed's kubelets serve self-signed certificates, as kind's do without
		// serverTLSBootstrap.
		"--kubelet-insecure-tls",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-use-node-status-port",
		"--metric-resolution=15s",
	}, nil)
	if err != nil {
		return nil, err
	}
	ms := &MetricsServer{b: b, proc: p}
	if err := ms.register(ctx, port); err != nil {
		ms.Stop()
		return nil, err
	}
	if err := waitFor(2*time.Minute, p, func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := b.Client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(c)
		return err
	}); err != nil {
		ms.Stop()
		return nil, fmt.Errorf("metrics API not served: %w\n%s", err, p.Tail(20))
	}
	return ms, nil
}

// register creates the ExternalName service and the APIService pointing at port.
func (ms *MetricsServer) register(ctx context.Context, port int) error {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []v1.ServicePort{{Name: "https", Port: int32(port)}}},
	}
	_ = ms.b.Client.CoreV1().Services("kube-system").Delete(ctx, svc.Name, metav1.DeleteOptions{})
	if _, err := ms.b.Client.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": metricsAPIService},
		"spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"namespace": "kube-system", "name": "metrics-server", "port": port},
			"insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 100,
		},
	})
	if err != nil {
		return err
	}
	rc := ms.b.Client.Discovery().RESTClient()
	_ = ms.deleteAPIService(ctx)
	_, err = rc.Post().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").
		SetHeader("Content-Type", "application/json").Body(body).DoRaw(ctx)
	return err
}

func (ms *MetricsServer) deleteAPIService(ctx context.Context) error {
	_, err := ms.b.Client.Discovery().RESTClient().Delete().
		AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/" + metricsAPIService).DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Tail is the end of metrics-server's log.
func (ms *MetricsServer) Tail(n int) string { return ms.proc.Tail(n) }

// Stop unregisters the API and stops the process.
func (ms *MetricsServer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = ms.deleteAPIService(ctx)
	_ = ms.b.Client.CoreV1().Services("kube-system").Delete(ctx, "metrics-server", metav1.DeleteOptions{})
	_ = ms.proc.Stop(10 * time.Second)
}
