package main

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// runExamplePod creates the example pod (scheduled by the real scheduler onto the
// minikubelet node) and waits until it is Running.
func runExamplePod(ctx context.Context, b *testbed.Bed) error {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", Labels: map[string]string{"app": "hello"}},
		Spec: v1.PodSpec{
			AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{
				Name: "hello", Image: testbed.TestAppImage, ImagePullPolicy: v1.PullIfNotPresent,
				Args:  []string{"serve", "--http=:8080"},
				Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
	pods := b.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create example pod: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "hello").String()})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			continue
		}
		if p, ok := ev.Object.(*v1.Pod); ok && p.Status.Phase == v1.PodRunning {
			fmt.Printf("example pod %s Running on %s with IP %s\n", p.Name, p.Spec.NodeName, p.Status.PodIP)
			return nil
		}
	}
	return fmt.Errorf("example pod not Running within 60s")
}
