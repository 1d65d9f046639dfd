package kit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// runningContainer finds container's node and runtime ID in pod's current status.
func (c *Cluster) runningContainer(ctx context.Context, pod *v1.Pod, container string) (endpoint, id string, err error) {
	p, err := c.livePod(ctx, pod)
	if err != nil {
		return "", "", err
	}
	s := containerStatus(p, container)
	if s == nil || s.State.Running == nil || s.ContainerID == "" {
		return "", "", fmt.Errorf("kit: container %s of pod %s/%s is not running (%s)", container, p.Namespace, p.Name, Summary(p))
	}
	endpoint, err = c.endpoint(p.Spec.NodeName)
	return endpoint, s.ContainerID, err
}

// KillContainer SIGKILLs the main process of a running container, as a crash would: it
// terminates with exit code 137 (reason Error) and the pod's restart policy applies.
func (c *Cluster) KillContainer(ctx context.Context, pod *v1.Pod, container string) error {
	endpoint, id, err := c.runningContainer(ctx, pod, container)
	if err != nil {
		return err
	}
	return testbed.KillContainer(ctx, endpoint, id)
}

// OOMContainer makes the kernel OOM-kill a running container, whatever it runs: its
// memory limit is lowered to its usage plus 16 MiB, its processes are made the most
// killable, and a process of the kit's own joins its memory cgroup and fills that on
// tmpfs. The container terminates with reason OOMKilled and exit code 137, reported by
// the runtime as for any OOM kill. Needs cgroup v1's memory controller and /dev/shm.
func (c *Cluster) OOMContainer(ctx context.Context, pod *v1.Pod, container string) error {
	endpoint, id, err := c.runningContainer(ctx, pod, container)
	if err != nil {
		return err
	}
	return testbed.OOMContainer(ctx, endpoint, id)
}

// FailProbe makes the HTTP and gRPC health checks of a container running "testapp
// serve" (Images.TestApp) fail: /healthz answers 500 and gRPC health NOT_SERVING, so
// readiness, liveness and startup probes on them fail, until HealProbe. The port is the
// container's first HTTP probe's (a number or a named container port), else 8080.
func (c *Cluster) FailProbe(ctx context.Context, pod *v1.Pod, container string) error {
	return c.testAppHealth(ctx, pod, container, "fail")
}

// HealProbe undoes FailProbe.
func (c *Cluster) HealProbe(ctx context.Context, pod *v1.Pod, container string) error {
	return c.testAppHealth(ctx, pod, container, "ok")
}

// testAppHealth POSTs /healthz/<what> to the test app in the container, straight to the
// pod's IP on the cluster's bridge (the API server may be unreachable during a test).
func (c *Cluster) testAppHealth(ctx context.Context, pod *v1.Pod, container, what string) error {
	p, err := c.livePod(ctx, pod)
	if err != nil {
		return err
	}
	if p.Status.PodIP == "" {
		return fmt.Errorf("kit: pod %s/%s has no IP yet (%s)", p.Namespace, p.Name, Summary(p))
	}
	port := 8080
	for _, ct := range p.Spec.Containers {
		if ct.Name == container {
			port = httpProbePort(ct, port)
		}
	}
	url := "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)) + "/healthz/" + what
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("kit: telling the test app in %s/%s to %s its health: %w", p.Name, container, what, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kit: POST %s: %s", url, resp.Status)
	}
	return nil
}

// httpProbePort is the port of the container's first HTTP probe, or def.
func httpProbePort(ct v1.Container, def int) int {
	for _, pr := range []*v1.Probe{ct.ReadinessProbe, ct.LivenessProbe, ct.StartupProbe} {
		if pr == nil || pr.HTTPGet == nil {
			continue
		}
		if pr.HTTPGet.Port.IntValue() > 0 {
			return pr.HTTPGet.Port.IntValue()
		}
		for _, cp := range ct.Ports {
			if cp.Name == pr.HTTPGet.Port.String() {
				return int(cp.ContainerPort)
			}
		}
	}
	return def
}

// PullableImage pushes a copy of one of the kit's images (Images.Busybox or
// Images.TestApp) to the cluster's own registry under a new name and returns that name:
// no node has it, so a pod naming it pulls it (and FailPulls can make that fail).
func (c *Cluster) PullableImage(base string) (string, error) {
	img, ok := c.bed.Images[base]
	if !ok {
		return "", fmt.Errorf("kit: %q is not one of the kit's images", base)
	}
	c.mu.Lock()
	c.seq++
	repo := fmt.Sprintf("kit/%s-%d", strings.SplitN(base[strings.LastIndex(base, "/")+1:], ":", 2)[0], c.seq)
	c.mu.Unlock()
	return c.bed.Registry.Push(repo, "v1", img)
}

// FailPulls makes every pull of image (a name PullableImage returned) fail: the registry
// answers 503 Service Unavailable for it, so pods naming it get ErrImagePull and then
// ImagePullBackOff, until RestorePulls.
func (c *Cluster) FailPulls(image string) error {
	repo, err := c.registryRepo(image)
	if err != nil {
		return err
	}
	c.bed.Registry.FailPulls(repo, http.StatusServiceUnavailable)
	return nil
}

// RestorePulls undoes FailPulls.
func (c *Cluster) RestorePulls(image string) error {
	repo, err := c.registryRepo(image)
	if err != nil {
		return err
	}
	c.bed.Registry.RestorePulls(repo)
	return nil
}

func (c *Cluster) registryRepo(image string) (string, error) {
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		return "", err
	}
	if ref.Context().RegistryStr() != c.bed.Registry.Host {
		return "", fmt.Errorf("kit: %s is not served by the cluster's registry %s (see PullableImage)", image, c.bed.Registry.Host)
	}
	return ref.Context().RepositoryStr(), nil
}

// StopRuntime stops node's containerd, as a crashed runtime: running containers go on
// (their shims survive), but the node cannot start, stop or inspect anything and reports
// the runtime down (Ready False) until StartRuntime.
func (c *Cluster) StopRuntime(node string) error {
	n := c.Node(node)
	if n == nil {
		return fmt.Errorf("kit: no node %q", node)
	}
	if n.runtime != nil {
		return n.runtime.Stop()
	}
	return c.bed.StopContainerd()
}

// StartRuntime starts node's containerd again (after StopRuntime) on its old state and
// waits until it answers.
func (c *Cluster) StartRuntime(node string) error {
	n := c.Node(node)
	if n == nil {
		return fmt.Errorf("kit: no node %q", node)
	}
	if n.runtime != nil {
		return n.runtime.Start()
	}
	return c.bed.StartContainerd()
}

// PauseAPI stalls all traffic between node and the API server, as a network partition
// would: its requests (status, lease, watches) hang, so after kube-controller-manager's
// node monitor grace period (50 s) the node's Ready condition turns Unknown
// (NodeStatusUnknown), while its pods go on running.
// Other nodes and the test's own client are unaffected. ResumeAPI lets traffic flow.
func (c *Cluster) PauseAPI(node string) error {
	n := c.Node(node)
	if n == nil {
		return fmt.Errorf("kit: no node %q", node)
	}
	n.proxy.Pause()
	return nil
}

// ResumeAPI undoes PauseAPI.
func (c *Cluster) ResumeAPI(node string) error {
	n := c.Node(node)
	if n == nil {
		return fmt.Errorf("kit: no node %q", node)
	}
	n.proxy.Resume()
	return nil
}
