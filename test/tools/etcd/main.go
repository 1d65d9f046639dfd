// Command etcd runs the etcd server pinned by this tools module (the version
// k8s.io/kubernetes v1.37.2 depends on), so the test bed needs no other download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
