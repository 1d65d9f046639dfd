package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/minikubelet/minikubelet/test/testbed"
)

var podSeq atomic.Int64

// newPod returns a pod bound to node (no scheduler wait) running one busybox container.
func newPod(node string, cmd ...string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d-%d", time.Now().UnixNano()%100000, podSeq.Add(1)), Namespace: "default"},
		Spec: v1.PodSpec{
			NodeName:                      node,
			AutomountServiceAccountToken:  new(bool),
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers: []v1.Container{{
				Name: "main", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd,
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func createPod(ctx context.Context, t *testing.T, pod *v1.Pod) *v1.Pod {
	t.Helper()
	p, err := bed.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		waitPodGone(ctx, p)
	})
	return p
}

func waitPodGone(ctx context.Context, p *v1.Pod) error {
	for {
		_, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deletePodAndWaitPathGone deletes p, waits until the API no longer has it, then until
// path is gone from the node (within d): what the node should have removed with it.
func deletePodAndWaitPathGone(ctx context.Context, t *testing.T, p *v1.Pod, path string, d time.Duration, what string) {
	t.Helper()
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there %s after the pod is gone: %s", path, d, what)
		}
	}
}

// watchPod calls cond on every version of the pod until it returns true.
func watchPod(ctx context.Context, t *testing.T, p *v1.Pod, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-wctx.Done()
		if ctx.Err() != nil && last != nil {
			t.Logf("last seen status of %s: %s", p.Name, describe(last))
		}
	}()
	return watchUntil(ctx, t, func(o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.Name).String()
		return bed.Client.CoreV1().Pods(p.Namespace).Watch(ctx, o)
	}, func(o any) bool {
		last = o.(*v1.Pod)
		return cond(last)
	}).(*v1.Pod)
}

func podCondition(p *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(p *v1.Pod) bool {
	c := podCondition(p, v1.PodReady)
	return c != nil && c.Status == v1.ConditionTrue
}

func containerStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// describe is a one-line summary of a pod's status for failure messages.
func describe(p *v1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
	}
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			fmt.Fprintf(&b, " [%s restarts=%d %s]", cs.Name, cs.RestartCount, stateString(cs.State))
		}
	}
	return b.String()
}

func stateString(s v1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s,%d)", s.Terminated.Reason, s.Terminated.ExitCode)
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	}
	return "none"
}

// cpuMemResources is requests and limits of cpu and memory ("" leaves one out).
func cpuMemResources(reqCPU, reqMem, limCPU, limMem string) v1.ResourceRequirements {
	list := func(cpu, mem string) v1.ResourceList {
		l := v1.ResourceList{}
		if cpu != "" {
			l[v1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[v1.ResourceMemory] = resource.MustParse(mem)
		}
		if len(l) == 0 {
			return nil
		}
		return l
	}
	return v1.ResourceRequirements{Requests: list(reqCPU, reqMem), Limits: list(limCPU, limMem)}
}
