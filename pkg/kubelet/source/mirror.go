package source

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Mirrors keeps one mirror pod in the API for every static pod, as upstream: created when
// missing (owned by the Node), deleted and recreated when it no longer matches the static
// pod (an edited manifest) or when someone deletes it, and deleted when its static pod is
// gone. Mirror pods are never run: the API source hands them here, not to the workers.
type Mirrors struct {
	Client kubernetes.Interface
	Node   string
	// Static lists the static pods; API lists the mirror pods the API holds for the node.
	Static func() []*v1.Pod
	API    func() []*v1.Pod
	// Created is called with the static pod's UID when a new mirror pod was created.
	Created func(uid types.UID)
	Period  time.Duration

	wake    chan struct{}
	nodeUID types.UID
}

// Wake asks for a reconcile now (a mirror pod or static pod changed).
func (m *Mirrors) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run reconciles every Period and on Wake until ctx ends.
func (m *Mirrors) Run(ctx context.Context) {
	if m.Period <= 0 {
		m.Period = 2 * time.Second
	}
	t := time.NewTicker(m.Period)
	defer t.Stop()
	for {
		m.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// NewMirrors returns a mirror manager (see the fields).
func NewMirrors(m Mirrors) *Mirrors {
	m.wake = make(chan struct{}, 1)
	return &m
}

// Reconcile makes the API's mirror pods match the static pods once.
func (m *Mirrors) Reconcile(ctx context.Context) {
	logger := klog.FromContext(ctx)
	have := map[string]*v1.Pod{}
	for _, p := range m.API() {
		have[p.Namespace+"/"+p.Name] = p
	}
	want := map[string]bool{}
	for _, s := range m.Static() {
		key := s.Namespace + "/" + s.Name
		want[key] = true
		cur := have[key]
		switch {
		case cur == nil:
			m.create(ctx, s)
		case cur.DeletionTimestamp != nil || cur.Annotations[AnnotationConfigMirror] != string(s.UID):
			// Deleted by someone, or of an older manifest: remove now, recreate next round.
			logger.V(2).Info("Replacing mirror pod", "pod", klog.KObj(cur))
			m.delete(ctx, cur)
		}
	}
	for key, p := range have {
		if !want[key] {
			logger.V(2).Info("Deleting mirror pod of a gone static pod", "pod", klog.KObj(p))
			m.delete(ctx, p)
		}
	}
}

func (m *Mirrors) create(ctx context.Context, s *v1.Pod) {
	logger := klog.FromContext(ctx)
	if m.nodeUID == "" {
		n, err := m.Client.CoreV1().Nodes().Get(ctx, m.Node, metav1.GetOptions{})
		if err != nil {
			logger.V(2).Info("Mirror pod waits for the node object", "err", err)
			return
		}
		m.nodeUID = n.UID
	}
	mp := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: map[string]string{},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: m.Node, UID: m.nodeUID, Controller: new(true)}},
	}, Spec: *s.Spec.DeepCopy()}
	for k, v := range s.Annotations {
		mp.Annotations[k] = v
	}
	mp.Annotations[AnnotationConfigMirror] = string(s.UID)
	if _, err := m.Client.CoreV1().Pods(s.Namespace).Create(ctx, mp, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			logger.Error(err, "Creating mirror pod failed", "pod", klog.KObj(s))
		}
		return
	}
	logger.V(2).Info("Created mirror pod", "pod", klog.KObj(s))
	if m.Created != nil {
		m.Created(s.UID)
	}
}

func (m *Mirrors) delete(ctx context.Context, p *v1.Pod) {
	uid := p.UID
	err := m.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.FromContext(ctx).Error(err, "Deleting mirror pod failed", "pod", klog.KObj(p))
	}
}
