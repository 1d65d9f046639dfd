// Package cri is minikubelet's runtime layer: a CRI client over gRPC, the pod -> CRI
// translation, and the container event stream.
//
// Every CRI call of minikubelet goes through this package's methods (no raw cri-api client
// leaves it), so that each is timed in kubelet_runtime_operations_duration_seconds under
// upstream's operation_type, and every error returned from this package is classed with
// github.com/containerd/errdefs (errdefs.IsNotFound, errdefs.IsUnavailable ...), converted
// from the gRPC status at the boundary.
package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize matches the upstream kubelet's CRI client (16 MiB) so large ListContainers
// answers and ExecSync output fit.
const maxMsgSize = 16 * 1024 * 1024

// Client talks to one CRI runtime (runtime and image services may share a socket).
type Client struct {
	rtConn, imgConn *grpc.ClientConn
	runtime         runtimeapi.RuntimeServiceClient
	images          runtimeapi.ImageServiceClient
	observer        func(Change)
	network         NetworkState  // as Ready last found it
	handlers        HandlerState  // as Ready last found them
	events          eventState    // which stream WatchEvents reads
	stats           chan struct{} // held by the one stats call in flight (statsTurn)
	// Timeout bounds each call that the caller's context does not already bound.
	Timeout time.Duration
}

// Dial connects lazily to the runtime and image endpoints ("unix:///path" or "/path").
// Use Version to check that the runtime answers.
func Dial(runtimeEndpoint, imageEndpoint string, options ...DialOption) (*Client, error) {
	var extra []grpc.DialOption
	for _, o := range options {
		o(&extra)
	}
	rt, err := dial(runtimeEndpoint, extra)
	if err != nil {
		return nil, err
	}
	img := rt
	if imageEndpoint != "" && imageEndpoint != runtimeEndpoint {
		if img, err = dial(imageEndpoint, extra); err != nil {
			rt.Close()
			return nil, err
		}
	}
	return &Client{
		rtConn: rt, imgConn: img,
		runtime: runtimeapi.NewRuntimeServiceClient(rt),
		images:  runtimeapi.NewImageServiceClient(img),
		stats:   make(chan struct{}, 1),
		Timeout: 2 * time.Minute,
	}, nil
}

func dial(endpoint string, extra []grpc.DialOption) (*grpc.ClientConn, error) {
	target := endpoint
	if strings.HasPrefix(endpoint, "/") {
		target = "unix://" + endpoint
	}
	if !strings.HasPrefix(target, "unix://") {
		return nil, fmt.Errorf("CRI endpoint %q: only unix sockets are supported", endpoint)
	}
	// After the runtime restarts, reconnect within a second (gRPC's default back-off grows
	// to two minutes), so the node and the event stream recover promptly.
	return grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 5 * time.Second,
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	}, extra...)...)
}

// NewFromServices wraps already-made service clients (tests use cri-api's fakes through this).
func NewFromServices(rt runtimeapi.RuntimeServiceClient, img runtimeapi.ImageServiceClient) *Client {
	return &Client{runtime: rt, images: img, stats: make(chan struct{}, 1), Timeout: 2 * time.Minute}
}

// Close releases the connections.
func (c *Client) Close() error {
	if c.rtConn == nil {
		return nil
	}
	if c.imgConn != c.rtConn {
		c.imgConn.Close()
	}
	return c.rtConn.Close()
}

// within bounds a call by d, unless the caller's context is bounded already, d is
// unbounded (<= 0) or the client has no timeout.
func (c *Client) within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 || c.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// call runs one CRI call with the default timeout and classes its error.
func call[Req, Resp any](ctx context.Context, c *Client, op string, fn func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	return callWithin(ctx, c, op, c.Timeout, fn, req)
}

// callWithin is call with a bound of its own, for calls whose runtime work outlasts the
// default, as upstream's CRI client: RunPodSandbox twice the timeout (a runtime under load
// can take minutes, and containerd 1.6 leaves the pause process of a cancelled one
// behind), StopContainer the timeout plus the grace period (a stop cut off sooner never
// reaches its SIGKILL), PullImage none (a large image takes as long as it takes).
func callWithin[Req, Resp any](ctx context.Context, c *Client, op string, d time.Duration, fn func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := c.within(ctx, d)
	defer cancel()
	start := time.Now()
	resp, err := fn(ctx, req)
	observe(op, start, err)
	if err != nil {
		// The runtime's message goes verbatim into PodStatus messages and events, as
		// upstream shows it; callers add context in their logs.
		return resp, errgrpc.ToNative(err)
	}
	return resp, nil
}

// Version asks the runtime for its name and version.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return call(ctx, c, "version", c.runtime.Version, &runtimeapi.VersionRequest{})
}

// Status returns the runtime's conditions (RuntimeReady, NetworkReady).
func (c *Client) Status(ctx context.Context) (*runtimeapi.RuntimeStatus, error) {
	resp, err := call(ctx, c, "status", c.runtime.Status, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}
