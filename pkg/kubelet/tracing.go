package kubelet

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	"k8s.io/component-base/tracing"
)

const (
	// tracingServiceName is the service.name of minikubelet's spans: upstream's
	// ComponentKubelet, so traces of the node agent are found where the kubelet's are.
	tracingServiceName = "kubelet"
	// instrumentationScope names the tracer, as upstream's kubelet names its own.
	instrumentationScope = "k8s.io/kubernetes/pkg/kubelet"
)

// tracing: the tracer provider of the tracing section, as upstream's kubelet builds it
// (component-base's NewProvider: OTLP over gRPC to tracing.endpoint, default
// localhost:4317, sampling samplingRatePerMillion of new traces, resource service.name
// "kubelet" and host.name): pod syncs and CRI calls are traced. Without the section
// nothing is traced. Spans still buffered are sent when the kubelet stops.
func (p *parts) tracing(ctx context.Context) error {
	tc := p.cfg.Kubelet.Tracing
	if tc == nil {
		p.tracer = tracing.NewNoopTracerProvider()
		return nil
	}
	tp, err := tracing.NewProvider(ctx, tc, []otlptracegrpc.Option{}, []resource.Option{
		resource.WithAttributes(attribute.String("service.name", tracingServiceName), attribute.String("host.name", p.hostname)),
	})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	p.tracer = tp
	p.closers = append(p.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			p.logger.Error(err, "Sending the last spans failed")
		}
	})
	return nil
}
