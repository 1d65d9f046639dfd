// Package probe runs liveness, readiness and startup probes (exec, HTTP, TCP, gRPC) in one
// worker per {pod UID, container, probe type}, and keeps their results.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Result of one probe run.
type Result int

const (
	Success Result = iota
	Warning        // success, with something worth an event
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "successful"
	case Warning:
		return "warning"
	}
	return "failed"
}

// ExecFunc runs a command in a container (CRI ExecSync).
type ExecFunc func(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, int32, error)

// Target is what a probe is aimed at.
type Target struct {
	PodIP       string
	Container   *v1.Container
	ContainerID string
	Exec        ExecFunc
}

// userAgent is what upstream's prober sends: kube-probe/<major>.<minor>.
const userAgent = "kube-probe/1.37"

// maxBody caps how much of an HTTP probe's response body is read, as upstream (10 KiB).
const maxBody = 10 * 1024

// Run runs the probe's handler once, bounded by its timeout, and returns the result and
// the output upstream puts in the Unhealthy event. An error means the probe could not be
// run at all (upstream's "unknown" result: the runtime failed the exec, a named port is
// missing); upstream records it as errored and does not count it.
func Run(ctx context.Context, p *v1.Probe, t Target) (Result, string, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	switch h := p.ProbeHandler; {
	case h.Exec != nil:
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, code, err := t.Exec(ctx, t.ContainerID, h.Exec.Command, timeout)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				return Failure, fmt.Sprintf("command %q timed out", strings.Join(h.Exec.Command, " ")), nil
			}
			return Failure, "", err
		}
		if code != 0 {
			return Failure, string(out), nil
		}
		return Success, string(out), nil
	case h.HTTPGet != nil:
		return httpProbe(ctx, h.HTTPGet, t, timeout)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, t.Container)
		if err != nil {
			return Failure, "", err
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = t.PodIP
		}
		// The dialer's own timeout (not a context deadline), as upstream: a timeout reads
		// "dial tcp ...: i/o timeout". ctx only cancels.
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return Failure, err.Error(), nil
		}
		conn.Close()
		return Success, "", nil
	case h.GRPC != nil:
		return grpcProbe(ctx, h.GRPC, t, timeout)
	}
	return Failure, "", fmt.Errorf("missing probe handler for %s", nameOf(t.Container))
}

// httpProbe bounds the request with the client's timeout, not a context deadline, so a
// hanging server reads as upstream's `Get "...": context deadline exceeded
// (Client.Timeout exceeded while awaiting headers)`; ctx only cancels.
func httpProbe(ctx context.Context, g *v1.HTTPGetAction, t Target, timeout time.Duration) (Result, string, error) {
	port, err := resolvePort(g.Port, t.Container)
	if err != nil {
		return Failure, "", err
	}
	host := g.Host
	if host == "" {
		host = t.PodIP
	}
	scheme := "http"
	if g.Scheme == v1.URISchemeHTTPS {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if p, err := url.Parse(g.Path); err == nil {
		u.Path, u.RawQuery = p.Path, p.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Failure, "", err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	redirectedAway := false
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // probes never verify, as upstream
			DisableKeepAlives: true,
		},
		// Follow redirects only to the same host; otherwise stop and report a warning.
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if r.URL.Hostname() != u.Hostname() {
				redirectedAway = true
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
	res, err := client.Do(req)
	if err != nil {
		return Failure, err.Error(), nil
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if redirectedAway {
		return Warning, fmt.Sprintf("Probe terminated redirects, Response body: %v", string(body)), nil
	}
	if res.StatusCode >= 200 && res.StatusCode < 400 {
		return Success, string(body), nil
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

// grpcProbe: connect within the timeout (upstream dials with WithBlock), then call
// grpc.health.v1.Health/Check; the failure messages are upstream's.
func grpcProbe(ctx context.Context, g *v1.GRPCAction, t Target, timeout time.Duration) (Result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(t.PodIP, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(userAgent))
	if err != nil {
		return Failure, fmt.Sprintf("error: failed to connect service at %q: %+v", addr, err), nil
	}
	defer conn.Close()
	if err := waitReady(ctx, conn); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Failure, fmt.Sprintf("timeout: failed to connect service %q within %v: %+v", addr, timeout, err), nil
		}
		return Failure, fmt.Sprintf("error: failed to connect service at %q: %+v", addr, err), nil
	}
	svc := ""
	if g.Service != nil {
		svc = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			switch st.Code() {
			case codes.Unimplemented:
				return Failure, fmt.Sprintf("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message()), nil
			case codes.DeadlineExceeded:
				return Failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
			}
		}
		return Failure, fmt.Sprintf("error: health rpc probe failed: %+v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return Success, "service healthy", nil
}

// waitReady connects conn and waits until it is ready, retrying failed connections until
// ctx ends (as a blocking dial does); it then returns ctx's error.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			conn.Connect()
		case connectivity.Shutdown:
			return errors.New("grpc: the client connection is closing")
		}
		if !conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// resolvePort returns a port given by number or by the name of one of c's ports.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in container %q", p.StrVal, nameOf(c))
}

func nameOf(c *v1.Container) string {
	if c == nil {
		return ""
	}
	return c.Name
}
