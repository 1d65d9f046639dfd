// Command conformance runs upstream's conformance suite against a cluster of minikubelet
// nodes (`make conformance`; package test/conformance).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/minikubelet/minikubelet/test/cluster"
	"github.com/minikubelet/minikubelet/test/conformance"
)

func main() {
	o := conformance.Options{Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	flag.StringVar(&o.Bin, "bin", "", "folder of e2e.test, ginkgo, agnhost and nnp (hack/build-conformance.sh prints it)")
	flag.StringVar(&o.Focus, "focus", `\[Conformance\]`, "specs to run (ginkgo --focus)")
	flag.StringVar(&o.Skip, "skip", conformance.DefaultSkip, "specs to leave out (ginkgo --skip)")
	flag.IntVar(&o.Procs, "procs", 4, "ginkgo's parallel processes")
	flag.IntVar(&o.Nodes, "nodes", 3, "cluster nodes (one control plane, the rest workers)")
	flag.StringVar(&o.Out, "out", "_output/conformance", "folder of the log and the JUnit report")
	flag.BoolVar(&o.Keep, "keep", false, "leave the cluster running afterwards")
	flag.Parse()
	if o.Bin == "" || flag.NArg() > 0 || o.Procs < 1 || o.Nodes < 2 {
		fmt.Fprintln(os.Stderr, "usage: conformance -bin DIR [-focus RE] [-skip RE] [-procs N] [-nodes N>=2] [-out DIR] [-keep]")
		os.Exit(2)
	}
	o.Cluster = cluster.Options{Name: "mkconf", Subnet: "172.30.8", Nodes: o.Nodes, Log: o.Log}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := conformance.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		stop()
		os.Exit(1)
	}
}
