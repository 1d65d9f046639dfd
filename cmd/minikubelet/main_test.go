package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// The GC target is ours unless the environment sets GOGC, which wins.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct {
		gogc string // "-": unset
		want int
	}{{"-", gcPercent}, {"80", 100}, {"off", 100}} {
		if tc.gogc == "-" {
			t.Setenv("GOGC", "")
			os.Unsetenv("GOGC")
		} else {
			t.Setenv("GOGC", tc.gogc)
		}
		debug.SetGCPercent(100) // what the runtime would have made of the environment
		setGCPercent()
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%s: GC percent %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
