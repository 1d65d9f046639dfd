// Command cluster makes and removes the kind-style cluster of `make cluster` (package
// test/cluster): `cluster up` (NODES, UPSTREAM_NODES, CLUSTER_NAME from the environment),
// `cluster down`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/minikubelet/minikubelet/test/cluster"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down  (environment: NODES=3 UPSTREAM_NODES=0 CLUSTER_NAME=mkc CLUSTER_KEEP=1 keeps a failed one)")
		os.Exit(2)
	}
	opts := cluster.Options{Name: os.Getenv("CLUSTER_NAME"), KeepOnFailure: os.Getenv("CLUSTER_KEEP") != "", Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	var err error
	if opts.Nodes, err = envInt("NODES", 3); err == nil {
		opts.UpstreamNodes, err = envInt("UPSTREAM_NODES", 0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Args[1] == "down" {
		cluster.Down(opts)
		fmt.Println("cluster removed")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := cluster.Up(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\ncluster ready in %.0fs: %d nodes\n", time.Since(start).Seconds(), len(c.Nodes))
	for _, n := range c.Nodes {
		agent := "minikubelet"
		if n.Upstream {
			agent = "upstream kubelet"
		}
		fmt.Printf("  %-22s %-12s %s\n", n.Name, n.IP, agent)
	}
	fmt.Printf("\n  export KUBECONFIG=%s\n  %s get nodes -o wide\n  make cluster-down   # removes it\n", c.Kubeconfig, c.Kubectl)
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a number", name, v)
	}
	return n, nil
}
