// Command testbed runs the local single-node cluster behind `make up` and `make down`.
//
//	testbed up     start control plane + containerd + minikubelet, run an example pod, start
//	               metrics-server and local-path-provisioner (the default StorageClass),
//	               print `kubectl get nodes,pods,storageclasses -o wide`; everything keeps
//	               running after it exits
//	testbed down   stop all of it and remove its files, bridge and firewall rules
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minikubelet/minikubelet/test/testbed"
)

const nodeName = "minikubelet-node"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testbed up|down")
		os.Exit(2)
	}
	opts := testbed.Options{Name: "up", Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	switch os.Args[1] {
	case "up":
		if err := up(opts); err != nil {
			fmt.Fprintf(os.Stderr, "make up: %v\n", err)
			os.Exit(1)
		}
	case "down":
		testbed.Down(opts)
		fmt.Println("test bed stopped")
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func up(opts testbed.Options) error {
	b, err := testbed.Start(opts)
	if err != nil {
		return err
	}
	k, err := b.StartMinikubelet(nodeName)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := b.WaitNodeReady(ctx, k, 60*time.Second); err != nil {
		return fmt.Errorf("node not Ready: %v\n%s", err, b.Logs(20))
	}
	fmt.Println("node Ready")
	if err := runExamplePod(ctx, b); err != nil {
		return fmt.Errorf("%v\n%s", err, k.Tail(30))
	}
	// `kubectl top` and HPAs need the metrics API; it keeps running with the bed.
	if _, err := b.StartMetricsServer(ctx); err != nil {
		return err
	}
	fmt.Println("metrics-server up (kubectl top node)")
	// The default StorageClass "standard" (rancher.io/local-path), as kind's.
	lpStart := time.Now()
	lp, err := b.StartLocalPath(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("local-path-provisioner up in %.1fs: default StorageClass %s, volumes in %s\n",
		time.Since(lpStart).Seconds(), testbed.DefaultStorageClass, lp.DataDir)
	kubectl := exec.Command(filepath.Join(b.ToolsBin, "kubectl"), "--kubeconfig", b.AdminKubeconfig, "get", "nodes,pods,storageclasses", "-o", "wide")
	kubectl.Stdout, kubectl.Stderr = os.Stdout, os.Stderr
	if err := kubectl.Run(); err != nil {
		return err
	}
	fmt.Printf("\nThe cluster keeps running. Use it with:\n  export KUBECONFIG=%s\n  alias kubectl=%s\nLogs: %s\nStop it with: make down\n",
		b.AdminKubeconfig, filepath.Join(b.ToolsBin, "kubectl"), filepath.Join(b.Dir, "logs"))
	return nil
}
