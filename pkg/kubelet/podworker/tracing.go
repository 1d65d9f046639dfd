package podworker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"k8s.io/klog/v2"
)

// startSyncSpan starts the span of one pod sync, named and labelled as upstream's
// ("syncPod", with the pod's UID, name and namespace): the CRI calls the sync makes are
// its children. Without a tracer (Config.Tracer nil) it is a no-op span.
func (w *Workers) startSyncSpan(ctx context.Context, wk *worker) (context.Context, trace.Span) {
	tracer := w.cfg.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	wk.mu.Lock()
	name, namespace := "", ""
	if wk.pod != nil {
		name, namespace = wk.pod.Name, wk.pod.Namespace
	}
	wk.mu.Unlock()
	return tracer.Start(ctx, "syncPod", trace.WithAttributes(
		attribute.String("k8s.pod.uid", string(wk.uid)),
		attribute.String("k8s.pod", klog.KRef(namespace, name).String()),
		attribute.String("k8s.pod.name", name),
		attribute.String("k8s.namespace.name", namespace),
	))
}
