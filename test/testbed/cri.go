package testbed

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIClients dials a runtime's CRI socket ("unix:///path" or "/path") with cri-api's own
// gRPC clients, for tests and tools that inspect or drive the runtime directly (the
// kubelet's pkg/cri hands out no raw client). The func returned closes the connection.
func CRIClients(endpoint string) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient, func() error, error) {
	target := endpoint
	if strings.HasPrefix(target, "/") {
		target = "unix://" + target
	}
	if !strings.HasPrefix(target, "unix://") {
		return nil, nil, nil, fmt.Errorf("CRI endpoint %q: not a unix socket", endpoint)
	}
	// Large answers (ListContainers of a busy node) fit, as in the kubelet's client.
	const maxMsg = 16 << 20
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		return nil, nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn), conn.Close, nil
}
