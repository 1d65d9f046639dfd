package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/minikubelet/minikubelet/test/cluster"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// Options of one conformance run.
type Options struct {
	// Bin holds e2e.test, ginkgo, agnhost and nnp (hack/build-conformance.sh prints it).
	Bin string
	// Focus and Skip select the specs (ginkgo regular expressions over their names).
	Focus, Skip string
	Procs       int    // ginkgo's parallel processes
	Nodes       int    // cluster nodes, one of them the control plane
	Out         string // the log and ginkgo's JUnit report go here
	// Keep leaves the cluster running after the run (make cluster-down CLUSTER_NAME=<Cluster.Name> removes it).
	Keep    bool
	Cluster cluster.Options
	Log     func(format string, args ...any)
}

// DefaultSkip: what a conformance run of one agent leaves out, as upstream's own
// (sonobuoy's non-disruptive mode): specs that must run alone or break the cluster.
const DefaultSkip = `\[Serial\]|\[Disruptive\]|\[Flaky\]`

// Run makes a cluster of minikubelet nodes, loads the e2e images into every node, runs
// the selected specs with ginkgo and removes the cluster (unless Keep). The error is
// ginkgo's when specs failed.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	for _, f := range []string{"e2e.test", "ginkgo", "agnhost", "nnp", "localhost.crt", "localhost.key"} {
		if _, err := os.Stat(filepath.Join(o.Bin, f)); err != nil {
			return fmt.Errorf("conformance binaries (hack/build-conformance.sh): %w", err)
		}
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tools, err := testbed.BuildTools() // cached; cluster.Up needs them too
	if err != nil {
		return err
	}
	imgs, err := Images(o.Bin, filepath.Join(tools, "coredns"))
	if err != nil {
		return err
	}
	c, err := cluster.Up(ctx, o.Cluster)
	if err != nil {
		return err
	}
	if o.Keep {
		o.Log("the cluster stays: KUBECONFIG=%s; make cluster-down CLUSTER_NAME=%s removes it", c.Kubeconfig, c.Name())
	} else {
		defer c.Stop()
	}
	start := time.Now()
	archive := filepath.Join(c.Dir, "images", "conformance.tar")
	if err := testbed.WriteArchive(archive, imgs); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := testbed.ImportArchive(n.Path("/run/containerd/containerd.sock"), archive); err != nil {
			return fmt.Errorf("e2e images into %s: %w", n.Name, err)
		}
	}
	o.Log("conformance: e2e images on every node (%.1fs)", time.Since(start).Seconds())

	logf, err := os.Create(filepath.Join(out, "ginkgo.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(o.Bin, "ginkgo"), ginkgoArgs(o, c.Kubeconfig, c.Kubectl, out)...)
	cmd.Stdout = io.MultiWriter(os.Stdout, logf)
	cmd.Stderr = cmd.Stdout
	cmd.Dir = o.Bin
	// ginkgo and its e2e.test processes are a group of their own: an interrupt reaches them
	// all (each ends its specs and cleans up), and none outlives the run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	o.Log("conformance: %s (log: %s)", cmd, logf.Name())
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			return fmt.Errorf("specs failed (ginkgo %v); see %s and %s", err, logf.Name(), filepath.Join(out, "junit_01.xml"))
		}
		return err
	}
	return nil
}

// ginkgoArgs: the run's command line. The pinned kubectl: the framework shells out to
// "kubectl" on the PATH otherwise, of whatever version the machine has.
func ginkgoArgs(o Options, kubeconfig, kubectl, out string) []string {
	return []string{
		fmt.Sprintf("--procs=%d", o.Procs), "--timeout=4h", "--no-color",
		"--focus=" + o.Focus, "--skip=" + o.Skip,
		"./e2e.test", "--",
		"--kubeconfig=" + kubeconfig, "--kubectl-path=" + kubectl,
		"--provider=skeleton", "--node-os-distro=debian", "--report-dir=" + out,
	}
}
