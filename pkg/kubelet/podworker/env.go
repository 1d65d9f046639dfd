package podworker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/fieldpath"
	"github.com/minikubelet/minikubelet/pkg/kubelet/source"
	"github.com/minikubelet/minikubelet/pkg/nodeauth"
)

// envSource reads configMaps and secrets for env and envFrom.
type envSource interface {
	configMap(ns, name string) (map[string]string, error)
	secret(ns, name string) (map[string][]byte, error)
	allocatable() v1.ResourceList // the node's, for unset limits
	// services lists the services of ns and of the default namespace (for service links).
	// waitSynced: first wait (briefly) for the service cache's first list.
	services(ns string, waitSynced bool) ([]*v1.Service, error)
}

// resolveEnv builds a container's environment in upstream order: envFrom first, then env
// (later entries win), with $(VAR) expanded against what came before.
func (w *Workers) resolveEnvFor(ctx context.Context, pod *v1.Pod, c *v1.Container, podIPs, hostIPs []string) ([]*runtimeapi.KeyValue, error) {
	return resolveEnvWith(apiEnvSource{w, ctx}, pod, c, podIPs, hostIPs)
}

type apiEnvSource struct {
	w   *Workers
	ctx context.Context
}

// errStandalone: a standalone node has no API server to read objects from.
var errStandalone = fmt.Errorf("no API server: this node runs standalone")

func (s apiEnvSource) configMap(ns, name string) (map[string]string, error) {
	if s.w.cfg.Client == nil {
		return nil, errStandalone
	}
	cm, err := nodeauth.Get(s.ctx, func(ctx context.Context) (*v1.ConfigMap, error) {
		return s.w.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("configmap %q not found", name) // upstream's wording
	}
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func (s apiEnvSource) allocatable() v1.ResourceList { return s.w.cfg.Allocatable }

func (s apiEnvSource) services(ns string, waitSynced bool) ([]*v1.Service, error) {
	if s.w.cfg.Services == nil {
		return nil, nil
	}
	// Right after start the service cache may still be filling (upstream's message).
	if synced := s.w.cfg.ServicesSynced; waitSynced && synced != nil && !synced() {
		if err := wait.PollUntilContextTimeout(s.ctx, 20*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) { return synced(), nil }); err != nil {
			return nil, fmt.Errorf("services have not yet been read at least once, cannot construct envvars")
		}
	}
	svcs, err := s.w.cfg.Services.Services(ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if ns != metav1.NamespaceDefault {
		if k, err := s.w.cfg.Services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
			svcs = append(svcs, k)
		}
	}
	return svcs, nil
}

func (s apiEnvSource) secret(ns, name string) (map[string][]byte, error) {
	if s.w.cfg.Client == nil {
		return nil, errStandalone
	}
	sec, err := nodeauth.Get(s.ctx, func(ctx context.Context) (*v1.Secret, error) {
		return s.w.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	return sec.Data, nil
}

func resolveEnvWith(src envSource, pod *v1.Pod, c *v1.Container, podIPs, hostIPs []string) ([]*runtimeapi.KeyValue, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	// Service links come first: anything the container declares wins over them. Static
	// pods do not wait for the service cache, as upstream: they may be what serves the
	// API (kubeadm's control plane), and get whatever services are known.
	svcs, err := src.services(pod.Namespace, !source.IsStatic(pod))
	if err != nil {
		return nil, err
	}
	for _, kv := range serviceEnv(pod, svcs) {
		set(kv[0], kv[1])
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			data, err := src.configMap(pod.Namespace, ef.ConfigMapRef.Name)
			if err != nil {
				if isOptional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			for _, k := range slices.Sorted(maps.Keys(data)) { // stable order, stable spec hash
				set(ef.Prefix+k, data[k])
			}
		case ef.SecretRef != nil:
			data, err := src.secret(pod.Namespace, ef.SecretRef.Name)
			if err != nil {
				if isOptional(ef.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			for _, k := range slices.Sorted(maps.Keys(data)) {
				set(ef.Prefix+k, string(data[k]))
			}
		}
	}
	lookup := func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, cri.Expand(e.Value, lookup))
			continue
		}
		v, ok, err := valueFrom(src, pod, c, e.ValueFrom, podIPs, hostIPs)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, k := range order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(vals[k])})
	}
	return out, nil
}

func isOptional(b *bool) bool { return b != nil && *b }

func valueFrom(src envSource, pod *v1.Pod, c *v1.Container, vf *v1.EnvVarSource, podIPs, hostIPs []string) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := fieldpath.Value(fieldpath.Pod{Pod: pod, PodIPs: podIPs, HostIPs: hostIPs}, vf.FieldRef.FieldPath)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := fieldpath.Resource(c, vf.ResourceFieldRef, fieldpath.UnsetLimits(pod, src.allocatable()))
		return v, err == nil, err
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		return keyRef(pod, "ConfigMap", r.Name, r.Key, r.Optional, src.configMap)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		v, ok, err := keyRef(pod, "Secret", r.Name, r.Key, r.Optional, src.secret)
		return string(v), ok, err
	}
	return "", false, nil
}

// keyRef resolves one key of a configMap or secret in the pod's namespace; a missing
// object or key is skipped when the reference is optional, else an error in upstream's words.
func keyRef[V any](pod *v1.Pod, kind, name, key string, optional *bool, fetch func(ns, name string) (map[string]V, error)) (V, bool, error) {
	var zero V
	data, err := fetch(pod.Namespace, name)
	if err != nil {
		if isOptional(optional) {
			return zero, false, nil
		}
		return zero, false, err
	}
	v, ok := data[key]
	if !ok {
		if isOptional(optional) {
			return zero, false, nil
		}
		return zero, false, fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, pod.Namespace, name)
	}
	return v, true, nil
}
