package cri

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"k8s.io/component-base/tracing"
)

// DialOption changes how Dial connects.
type DialOption func(*[]grpc.DialOption)

// WithTracerProvider traces every CRI call as a gRPC client span of tp (upstream's CRI
// client does the same with otelgrpc), a child of the caller's span when the context has
// one, with the trace context propagated to the runtime.
func WithTracerProvider(tp trace.TracerProvider) DialOption {
	return func(opts *[]grpc.DialOption) {
		if tp == nil {
			return
		}
		*opts = append(*opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithMessageEvents(otelgrpc.ReceivedEvents, otelgrpc.SentEvents),
			otelgrpc.WithPropagators(tracing.Propagators()),
			otelgrpc.WithTracerProvider(tp))))
	}
}
