package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestObserveLogSymlinks is a log shipper's view of the node: each running container has
// <container-logs-dir>/<pod>_<ns>_<container>-<id>.log pointing at the file `kubectl logs`
// reads; the link follows the live file across rotations and goes with the container.
func TestObserveLogSymlinks(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "obs-logs", "--container-log-max-size=64Ki", "--container-log-max-files=3")
	watchNode(ctx, t, k.NodeName, isReady)
	marker := "shipper-marker"
	// About 40 KB/s after the marker line: a rotation every few seconds.
	pod := newPod(k.NodeName, "sh", "-c", `echo `+marker+`; i=0; while true; do i=$((i+1)); echo "line $i $(head -c 1990 /dev/zero | tr '\0' x)"; sleep 0.05; done`)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", containerRunning("main"))
	id := containerID(p, "main")
	link := filepath.Join(k.RootDir, "container-logs", p.Name+"_"+p.Namespace+"_main-"+id+".log")
	live := filepath.Join(k.RootDir, "pod-logs", p.Namespace+"_"+p.Name+"_"+string(p.UID), "main", "0.log")
	if target, err := os.Readlink(link); err != nil || target != live {
		t.Fatalf("symlink %s -> %q (%v), want -> %s", link, target, err, live)
	}
	// What the shipper reads through the link is what `kubectl logs` serves (once the
	// container has written its first line: Running comes before that).
	watchUntilPoll(ctx, t, "the marker read through the link", func() (bool, string) {
		b, err := os.ReadFile(link)
		return err == nil && strings.Contains(string(b), " stdout F "+marker+"\n"), fmt.Sprintf("%v; first bytes %q", err, head(b))
	})
	if logs, err := podLogs(ctx, p, &v1.PodLogOptions{}); err != nil || !strings.HasPrefix(logs, marker+"\n") {
		t.Fatalf("kubectl logs: %q, %v", head([]byte(logs)), err)
	}

	// After rotations the link still resolves, to the new live file.
	dir := filepath.Dir(live)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if gz, _ := filepath.Glob(filepath.Join(dir, "0.log.*.gz")); len(gz) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no rotation with compression after 60s")
		}
	}
	if !sameFile(t, link, live) {
		t.Fatal("after rotation the link does not resolve to the live log file")
	}
	if b, err := os.ReadFile(link); err != nil || strings.Contains(string(b), marker) {
		t.Errorf("after rotation, reading the link: %v, marker still there: %v", err, strings.Contains(string(b), marker))
	}

	// Deleted with the pod.
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("symlink %s still there 60s after the pod's deletion", link)
		}
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		t.Logf("stat: %v, %v", err1, err2)
		return false
	}
	return os.SameFile(fa, fb)
}

func head(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
