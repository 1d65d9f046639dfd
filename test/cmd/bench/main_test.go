package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeepLogs: a failed profile's logs are copied out, sub-directories included.
func TestKeepLogs(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "agents"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"containerd.log": "panic: x", "agents/mk.log": "E1205"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(out, "logs-ordinary")
	keepLogs(src, dst)
	for name, want := range map[string]string{"containerd.log": "panic: x", "agents/mk.log": "E1205"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
}
