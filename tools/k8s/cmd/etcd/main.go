// Command etcd is upstream etcd, built inside this module so that it uses the
// exact etcd version pinned by the Kubernetes release we build.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
