package testbed

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Only the shims naming this bed's socket are stopped.
func TestKillShimsOf(t *testing.T) {
	start := func(sock string) *exec.Cmd {
		// A stand-in with a shim's command line: argv[0] and -address as containerd gives them.
		c := &exec.Cmd{Path: "/bin/sh", Args: []string{"containerd-shim-runc-v2", "-c", "sleep 30; :", "-address", sock}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	mine, other := start("/tmp/bed-a/containerd.sock"), start("/tmp/bed-b/containerd.sock")
	done := make(chan error, 1)
	go func() { done <- mine.Wait() }()
	killShimsOf("/tmp/bed-a/containerd.sock")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("this bed's shim still running")
	}
	if other.ProcessState != nil {
		t.Fatal("another bed's shim was stopped")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("another bed's shim: %v", err)
	}
}
