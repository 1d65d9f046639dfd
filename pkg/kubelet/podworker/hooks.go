package podworker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// runHook runs a lifecycle handler (exec, httpGet or sleep) for container c. On failure it
// returns upstream's message for the handler kind.
func (w *Workers) runHook(ctx context.Context, pod *v1.Pod, c *v1.Container, containerID string, h *v1.LifecycleHandler, podIP string) (string, error) {
	switch {
	case h.Exec != nil:
		out, code, err := w.cfg.Runtime.ExecSync(ctx, containerID, h.Exec.Command, hookTimeout(ctx))
		if err == nil && code != 0 {
			err = fmt.Errorf("command '%s' exited with %d: %s", joinCmd(h.Exec.Command), code, out)
		}
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, podDesc(pod), err, string(out)), err
		}
	case h.HTTPGet != nil:
		if err := httpHook(ctx, c, h.HTTPGet, podIP); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
				h.HTTPGet.Path, c.Name, podDesc(pod), err), err
		}
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
			err := ctx.Err()
			return fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v",
				h.Sleep.Seconds, c.Name, podDesc(pod), err), err
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
	default:
		err := fmt.Errorf("invalid handler: %v", h)
		return fmt.Sprintf("Cannot run handler: %v", err), err
	}
	return "", nil
}

func joinCmd(cmd []string) string {
	s := ""
	for i, a := range cmd {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}

// hookTimeout is what is left of ctx's deadline (hooks run inside the grace period), or a
// generous default for postStart, which upstream does not bound.
func hookTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Second)
	}
	return 2 * time.Minute
}

func httpHook(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction, podIP string) error {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return err
	}
	host := g.Host
	if host == "" {
		host = podIP
	}
	scheme := "http"
	if g.Scheme == v1.URISchemeHTTPS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: g.Path}
	if p, err := url.Parse(g.Path); err == nil {
		u.Path, u.RawQuery = p.Path, p.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Timeout: hookTimeout(ctx), Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // as upstream: hooks do not verify
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP lifecycle hook (%s) returned status %d", g.Path, resp.StatusCode)
	}
	return nil
}

// resolvePort returns a port given by number, or by the name of one of c's ports.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p, c)
}

// postStart runs the container's postStart hook; on failure it kills the container as
// upstream does and returns the handler's message.
func (w *Workers) postStart(ctx context.Context, pod *v1.Pod, c *v1.Container, containerID string, podIP string) (string, error) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return "", nil
	}
	msg, err := w.runHook(ctx, pod, c, containerID, c.Lifecycle.PostStart, podIP)
	if err == nil {
		return "", nil
	}
	klog.FromContext(ctx).Error(err, "Failed to execute PostStartHook", "pod", klog.KObj(pod), "containerName", c.Name)
	// Upstream keeps the handler's message out of the event so secrets cannot leak.
	w.event(pod, c, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed")
	w.event(pod, c, v1.EventTypeNormal, "Killing", "FailedPostStartHook")
	if kerr := w.cfg.Runtime.StopContainer(ctx, containerID, gracePeriod(pod)); kerr != nil {
		klog.FromContext(ctx).Error(kerr, "Failed to kill container", "pod", klog.KObj(pod), "containerName", c.Name)
	}
	return msg, err
}

// stopContainer runs the preStop hook within the grace period, then stops the container
// with what is left of it (never under 2s), as upstream's killContainer.
func (w *Workers) stopContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, name, containerID string, grace int64, podIP string) {
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if _, err := w.runHook(hctx, pod, c, containerID, c.Lifecycle.PreStop, podIP); err != nil {
			klog.FromContext(ctx).Error(err, "PreStop hook failed", "pod", klog.KObj(pod), "containerName", name)
			w.event(pod, c, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed")
		}
		cancel()
		grace -= int64(time.Since(start).Seconds())
	}
	grace = max(grace, minGracePeriod)
	if err := w.cfg.Runtime.StopContainer(ctx, containerID, grace); err != nil {
		klog.FromContext(ctx).Error(err, "Stopping container failed", "pod", klog.KObj(pod), "container", name)
	}
}
