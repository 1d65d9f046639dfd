// Package e2e runs minikubelet against a real kube-apiserver and a real containerd (the
// test bed). These tests are never skipped: a missing prerequisite is a failure.
package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/test/testbed"
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	start := time.Now()
	b, err := testbed.Start(testbed.Options{Name: bedName(testbed.DefaultRuntime()), Log: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot start the test bed: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: test bed up in %.1fs\n", time.Since(start).Seconds())
	bed = b
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: failures; component logs follow\n%s\n", b.Logs(40))
	}
	b.Stop()
	os.Exit(code)
}

// bedName names the suite's bed after its runtime, so that `make test` can run the suite
// on both containerds at once (each bed has its own folder, bridge, subnet and cgroups).
func bedName(runtime string) string {
	switch runtime {
	case testbed.RuntimeContainerd:
		return "e2e"
	case testbed.RuntimeContainerd2:
		return "e2e-c2" // the bridge's name (mkb-<name>) must fit in 15 bytes
	default:
		return "e2e-" + runtime
	}
}

// upstream is set by `make test-upstream` (MINIKUBELET_E2E_AGENT=upstream): the node agent
// is then the pinned upstream kubelet, for the suites meant to compare the two.
var upstream = os.Getenv("MINIKUBELET_E2E_AGENT") == "upstream"

// sharedFlags are the extra flags the upstream kubelet is given too under test-upstream
// (same names, same meaning); it ignores the others a test passes.
var sharedFlags = []string{"--cluster-dns=", "--cluster-domain=", "--resolv-conf=", "--eviction-", "--volume-stats-agg-period=", "--minimum-image-ttl-duration="}

// runtimeEndpointFlag points a node at another runtime (both agents).
const runtimeEndpointFlag = "--container-runtime-endpoint="

// startKubelet starts a node agent (minikubelet, or the upstream kubelet under
// test-upstream) for one test and stops it (printing its log tail if the test failed)
// when the test ends.
func startKubelet(t *testing.T, name string, extra ...string) *testbed.Kubelet {
	t.Helper()
	start := bed.StartMinikubelet
	if upstream {
		start = func(name string, extra ...string) (*testbed.Kubelet, error) {
			var o testbed.UpstreamOptions
			for _, f := range extra {
				if ep, ok := strings.CutPrefix(f, runtimeEndpointFlag); ok {
					o.Endpoint = ep // a config field upstream, a flag of minikubelet
				} else if slices.ContainsFunc(sharedFlags, func(p string) bool { return strings.HasPrefix(f, p) }) {
					o.Flags = append(o.Flags, f)
				}
			}
			return bed.StartUpstreamKubeletWith(name, o)
		}
	}
	k, err := start(name, extra...)
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, k)
	return k
}

// stopWhenDone stops node agent k when the test ends (printing its log tail if the test
// failed) and deletes its Node.
func stopWhenDone(t *testing.T, k *testbed.Kubelet) {
	t.Cleanup(func() {
		_ = k.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("node agent %s log tail:\n%s", k.NodeName, k.Tail(60))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bed.Client.CoreV1().Nodes().Delete(ctx, k.NodeName, deleteNow)
	})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
