// Command csidriver is the test bed's CSI driver, csi.e2e.minikubelet.io: a small driver
// whose volumes are folders under --state-dir, bind-mounted by its node service, or, for
// raw block access (volumeMode: Block), sparse files there that NodeStageVolume attaches
// to loop devices (losetup: root, and loop devices on the host) and NodePublishVolume
// bind-mounts onto the pod's target file. It has a controller service for
// external-attacher and, with --registration-dir, serves the kubelet plugin registration
// node-driver-registrar would otherwise serve. One process per node.
// Every call is logged to stderr, one line each ("csi: <method> ..."), so tests can count
// them; volume handles starting with fail-publish- and hang-stage- inject faults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "unix socket path of the CSI gRPC server (unix:// prefix allowed)")
	nodeID := flag.String("node-id", "", "this node's ID (NodeGetInfo, topology)")
	stateDir := flag.String("state-dir", "", "folder of the driver's state; volume data lives in <state-dir>/volumes/<volume handle> (<volume handle>.img for block volumes)")
	regDir := flag.String("registration-dir", "", "a kubelet's <root-dir>/plugins_registry: also serve the kubelet plugin registration there")
	provKubeconfig := flag.String("provisioner-kubeconfig", "", "also provision PVs for claims of this driver's classes (external-provisioner's job), with this kubeconfig")
	flag.Parse()
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	if err := run(*endpoint, *nodeID, *stateDir, *regDir, *provKubeconfig); err != nil {
		log.Fatalf("csidriver: %v", err)
	}
}

func run(endpoint, nodeID, stateDir, regDir, provKubeconfig string) error {
	endpoint = strings.TrimPrefix(endpoint, "unix://")
	if endpoint == "" || nodeID == "" || stateDir == "" {
		return errors.New("--endpoint, --node-id and --state-dir are required")
	}
	if !filepath.IsAbs(endpoint) {
		return fmt.Errorf("--endpoint %q: want an absolute socket path", endpoint)
	}
	d, err := newDriver(nodeID, stateDir)
	if err != nil {
		return err
	}
	csiSrv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(csiSrv, d)
	csi.RegisterControllerServer(csiSrv, d)
	csi.RegisterNodeServer(csiSrv, d)
	l, err := listenUnix(endpoint)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- csiSrv.Serve(l) }()
	log.Printf("csidriver: %s node %s serving CSI on %s, state in %s", DriverName, nodeID, endpoint, stateDir)

	var regSrv *grpc.Server
	if regDir != "" {
		sock := filepath.Join(regDir, DriverName+"-reg.sock")
		rl, err := listenUnix(sock)
		if err != nil {
			csiSrv.Stop()
			return err
		}
		regSrv = grpc.NewServer()
		registerapi.RegisterRegistrationServer(regSrv, &registrar{endpoint: endpoint})
		go func() { errc <- regSrv.Serve(rl) }()
		log.Printf("csidriver: serving kubelet plugin registration on %s", sock)
	}

	if provKubeconfig != "" {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := runProvisioner(ctx, provKubeconfig, d); err != nil {
			csiSrv.Stop()
			return err
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sigs:
		log.Printf("csidriver: %v: stopping", s)
	case err = <-errc:
	}
	// Closing the listeners removes the sockets: the kubelet's plugin watcher sees the
	// registration socket go and deregisters the driver.
	if regSrv != nil {
		regSrv.Stop()
	}
	csiSrv.Stop()
	return err
}

// listenUnix listens on a unix socket at path, replacing a stale one.
func listenUnix(path string) (net.Listener, error) {
	if len(path) > 107 {
		return nil, fmt.Errorf("socket path %s is %d bytes, longer than a unix socket address allows (107)", path, len(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

// registrar is node-driver-registrar's part: the kubelet's plugin watcher finds the
// registration socket, asks GetInfo, and tells the outcome.
type registrar struct {
	registerapi.UnimplementedRegistrationServer
	endpoint string
}

// SupportedVersions are the CSI versions the registration announces.
var SupportedVersions = []string{"1.0.0"}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	log.Printf("registration: GetInfo -> type=%s name=%s endpoint=%s versions=%v", registerapi.CSIPlugin, DriverName, r.endpoint, SupportedVersions)
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: DriverName, Endpoint: r.endpoint, SupportedVersions: SupportedVersions}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.GetPluginRegistered() {
		log.Printf("registration: NotifyRegistrationStatus registered=true")
	} else {
		log.Printf("registration: NotifyRegistrationStatus registered=false error=%q", s.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
