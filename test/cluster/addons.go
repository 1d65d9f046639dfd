package cluster

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// MetricsServerImage is the image the metrics-server add-on runs, built here from
// test/tools/metrics-server under the release's name.
const MetricsServerImage = "registry.k8s.io/metrics-server/metrics-server:v0.8.0"

//go:embed addons/metrics-server.yaml
var metricsServerManifest []byte

// metricsServerImage: the metrics-server binary alone, as the release image is
// (distroless: no shell), run as user 1000 by its manifest.
func metricsServerImage() (v1.Image, error) {
	bin, err := testbed.BuildMetricsServer()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return testbed.NewImage([]testbed.File{{Path: "metrics-server", Data: data, Mode: 0o755}},
		v1.Config{Entrypoint: []string{"/metrics-server"}, User: "65534"})
}

// applyAddOns installs what a kind user adds first: metrics-server (`kubectl top`, HPA).
func (c *Cluster) applyAddOns() error {
	f := filepath.Join(c.Dir, "metrics-server.yaml")
	if err := os.WriteFile(f, metricsServerManifest, 0o644); err != nil {
		return err
	}
	out, err := exec.Command(c.Kubectl, "--kubeconfig="+c.Kubeconfig, "apply", "-f", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl apply metrics-server: %v\n%s", err, out)
	}
	return nil
}
