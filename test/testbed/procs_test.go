package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestCloseInheritedFiles: a file descriptor the process holds without close-on-exec is
// marked close-on-exec, so bed processes do not inherit it.
func TestCloseInheritedFiles(t *testing.T) {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC != 0 {
		t.Fatalf("setup: flags %d, %v", flags, err)
	}
	closeInheritedFiles()
	if flags, err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d not close-on-exec: flags %d, %v", fd, flags, err)
	}
}

// A zombie (exited, not yet reaped) is not running; a live process is; a gone one is not.
func TestRunning(t *testing.T) {
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Process.Kill(); _ = live.Wait() }()
	if !Running(live.Process.Pid) {
		t.Errorf("live process %d not running", live.Process.Pid)
	}
	dead := exec.Command("true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	// Not waited for: it stays a zombie until Wait reaps it.
	deadline := time.Now().Add(5 * time.Second)
	for Running(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("zombie %d already gone: %v", pid, err)
	}
	if Running(pid) {
		t.Errorf("zombie %d counted as running", pid)
	}
	_ = dead.Wait()
	if Running(pid) {
		t.Errorf("reaped process %d counted as running", pid)
	}
}
