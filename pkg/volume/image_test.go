package volume

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// An image volume is accepted with nothing on the host (also on a standalone node); its
// mount is read-only and has no host path.
func TestImageVolume(t *testing.T) {
	root := t.TempDir()
	m, err := New(Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	pod := testPod(v1.Volume{Name: "img", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "busybox:1.36", PullPolicy: v1.PullIfNotPresent}}})
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mounts["img"]; got != (Mount{Image: true, ReadOnly: true}) {
		t.Errorf("mount = %+v", got)
	}
	if _, err := os.Stat(filepath.Join(m.PodDir(pod.UID), "volumes")); !os.IsNotExist(err) {
		t.Errorf("an image volume made folders on the host: %v", err)
	}
	if err := m.TearDown(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
}

func TestCheckSubPath(t *testing.T) {
	for sub, ok := range map[string]bool{"bin": true, "a/b": true, "/etc": false, "../x": false, "a/../../b": false} {
		if err := CheckSubPath(sub); (err == nil) != ok {
			t.Errorf("%q: %v", sub, err)
		}
	}
}
