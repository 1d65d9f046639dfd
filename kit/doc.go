// Package kit lets another module's tests run a real Kubernetes control plane with one or
// more minikubelet nodes on the machine, run pods on them, inject faults and assert how
// pod status moves.
//
//	c, err := kit.Start(ctx, kit.Options{Name: "mytest", Nodes: 1})
//	if err != nil { ... }
//	defer c.Stop()
//	pod, err := c.RunPod(ctx, &v1.Pod{ ... Image: c.Images.TestApp ... })
//	_, err = c.WaitForTransition(ctx, pod, kit.Ready())
//	err = c.FailProbe(ctx, pod, "app")
//	_, err = c.WaitForTransition(ctx, pod, kit.All(kit.NotReady(), kit.ContainerReady("app", false)))
//
// What runs: etcd, kube-apiserver, kube-controller-manager and kube-scheduler (the pinned
// upstream v1.37.2) on 127.0.0.1; per node a minikubelet built from this module's source
// and a containerd of its own, pods on a bridge the kit makes with a private subnet and
// no route off the machine; an image registry in the test process. Everything lives in
// /var/lib/minikubelet-testbed/<Options.Name> and is removed by Cluster.Stop (and by the
// next Start of the same name, if a run died).
//
// Faults: KillContainer (the process is SIGKILLed), OOMContainer (the kernel OOM-kills
// it), FailProbe/HealProbe (the test app's health checks fail), FailPulls/RestorePulls
// (the registry answers 503 for an image), StopRuntime/StartRuntime (the node's
// containerd goes down), PauseAPI/ResumeAPI (the node's traffic to the API server stalls).
//
// Transitions: every pod the kit runs (RunPod) or is asked about (Trace) is watched
// through the API; its Trace keeps each distinct status with the time it was seen, the
// first whole and each later one as a diff from the one before. WaitForTransition waits
// for a status a Matcher accepts, after the one the previous wait on that pod matched, and
// on failure returns the whole trace in its error.
//
// Requirements: root on Linux (OOMContainer needs cgroup v1's memory controller, as on
// the machine minikubelet is developed on), the Debian packages and the pinned upstream tools `make deps` installs and builds
// in a clone of minikubelet (cached in ~/.cache/minikubelet, found from any module; or
// set MINIKUBELET_TOOLS_BIN), and the go command (the kit builds minikubelet and the
// test images from this module's source in the module cache). See examples/crashwatch.
package kit
