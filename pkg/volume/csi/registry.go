// Package csi is the node side of CSI as the upstream kubelet does it: drivers register
// through sockets in <root-dir>/plugins_registry (the kubelet plugin registration API that
// node-driver-registrar speaks), are recorded in the node's CSINode object, and stage and
// publish volumes for pods at upstream's paths under <root-dir>.
package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// defaultCallTimeout bounds each CSI call, as upstream's csiTimeout (2 min) does for node
// operations; registration calls get upstream's 10 s.
const (
	defaultCallTimeout  = 2 * time.Minute
	registrationTimeout = 10 * time.Second
)

// Config is what the registry needs.
type Config struct {
	// RootDir is the kubelet's root dir; sockets are watched in RootDir/plugins_registry.
	RootDir  string
	NodeName string
	// Client records drivers in CSINode and the Node; nil on a standalone node.
	Client kubernetes.Interface
	// CallTimeout bounds each call to a driver (default 2 min, upstream's); a driver that
	// hangs fails the one volume after it, and nothing else waits.
	CallTimeout time.Duration
}

// callCtx is ctx bounded by the call timeout.
func (c Config) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.CallTimeout <= 0 {
		return context.WithTimeout(ctx, defaultCallTimeout)
	}
	return context.WithTimeout(ctx, c.CallTimeout)
}

// Registry keeps the registered CSI drivers and their connections.
type Registry struct {
	cfg Config

	mu      sync.Mutex
	drivers map[string]*Driver
	sockets map[string]string // registration socket -> driver name
}

// Driver is a registered CSI driver's node service.
type Driver struct {
	Name     string
	Endpoint string
	NodeID   string
	conn     *grpc.ClientConn
	node     csipb.NodeClient
	caps     map[csipb.NodeServiceCapability_RPC_Type]bool
}

// NewRegistry returns an empty registry; Run watches for drivers.
func NewRegistry(cfg Config) *Registry {
	return &Registry{cfg: cfg, drivers: map[string]*Driver{}, sockets: map[string]string{}}
}

// Dir is the folder plugins put their registration sockets in.
func (r *Registry) Dir() string { return filepath.Join(r.cfg.RootDir, "plugins_registry") }

// Driver returns a registered driver, or upstream's error for one that is not.
func (r *Registry) Driver(name string) (*Driver, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.drivers[name]
	if !ok {
		return nil, fmt.Errorf("driver name %s not found in the list of registered CSI drivers", name)
	}
	return d, nil
}

// Run watches the registration folder until ctx ends: every socket found is registered,
// every socket removed deregisters its driver.
func (r *Registry) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if err := os.MkdirAll(r.Dir(), 0o750); err != nil {
		logger.Error(err, "Cannot create the plugin registration folder")
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Error(err, "Cannot watch the plugin registration folder")
		return
	}
	defer w.Close()
	if err := w.Add(r.Dir()); err != nil {
		logger.Error(err, "Cannot watch the plugin registration folder")
		return
	}
	go r.ensureCSINode(ctx)
	// failed are sockets whose registration failed (a plugin binds its socket before it
	// listens): retried while they exist, as upstream's reconciler does, backing off
	// from a second to two minutes.
	type retryAt struct {
		at    time.Time
		delay time.Duration
	}
	failed := map[string]retryAt{}
	try := func(path string) {
		if r.found(ctx, path) {
			delete(failed, path)
			return
		}
		d := min(2*failed[path].delay, 2*time.Minute)
		d = max(d, time.Second)
		failed[path] = retryAt{time.Now().Add(d), d}
	}
	entries, _ := os.ReadDir(r.Dir())
	for _, e := range entries {
		try(filepath.Join(r.Dir(), e.Name()))
	}
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			r.closeAll()
			return
		case <-retry.C:
			for path, f := range failed {
				if time.Now().After(f.at) {
					try(path)
				}
			}
		case ev := <-w.Events:
			switch {
			case ev.Has(fsnotify.Create):
				try(ev.Name)
			case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
				delete(failed, ev.Name)
				r.gone(ctx, ev.Name)
			}
		case err := <-w.Errors:
			logger.Error(err, "Watching the plugin registration folder")
		}
	}
}

// found registers the plugin behind a new socket (hidden files and non-sockets are not
// plugins, as upstream's watcher); false: the registration failed and may be retried.
func (r *Registry) found(ctx context.Context, path string) bool {
	if strings.HasPrefix(filepath.Base(path), ".") {
		return true
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return true
	}
	if err := r.register(ctx, path); err != nil {
		klog.FromContext(ctx).Error(err, "Registering plugin failed", "socket", path)
		return false
	}
	return true
}

// register asks the plugin who it is, connects to its CSI endpoint, records it, and tells
// the plugin how that went.
func (r *Registry) register(ctx context.Context, socket string) error {
	conn, err := dial(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := registerapi.NewRegistrationClient(conn)
	cctx, cancel := context.WithTimeout(ctx, registrationTimeout)
	info, err := reg.GetInfo(cctx, &registerapi.InfoRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("failed to get plugin info using RPC GetInfo at socket %s, err: %v", socket, err)
	}
	regErr := r.install(ctx, socket, info)
	status := &registerapi.RegistrationStatus{PluginRegistered: regErr == nil}
	if regErr != nil {
		status.Error = regErr.Error()
	}
	cctx, cancel = context.WithTimeout(ctx, registrationTimeout)
	defer cancel()
	if _, err := reg.NotifyRegistrationStatus(cctx, status); err != nil {
		klog.FromContext(ctx).Error(err, "Telling the plugin its registration status failed", "plugin", info.Name)
	}
	if regErr == nil {
		klog.FromContext(ctx).Info("Registered CSI driver", "driver", info.Name, "endpoint", r.endpoint(socket, info))
	}
	return regErr
}

func (r *Registry) endpoint(socket string, info *registerapi.PluginInfo) string {
	if info.Endpoint != "" {
		return info.Endpoint
	}
	return socket
}

// install validates the plugin as upstream's CSI registration handler does, then keeps a
// connection to its node service and records it on the node.
func (r *Registry) install(ctx context.Context, socket string, info *registerapi.PluginInfo) error {
	if info.Type != registerapi.CSIPlugin {
		return fmt.Errorf("no handler registered for plugin type: %s at socket %s", info.Type, socket)
	}
	if err := checkVersions(info.Name, info.SupportedVersions); err != nil {
		return fmt.Errorf("validation failed for CSI Driver %s at endpoint %s: %v", info.Name, r.endpoint(socket, info), err)
	}
	d, err := connect(ctx, info.Name, r.endpoint(socket, info))
	if err != nil {
		return err
	}
	cctx, cancel := r.cfg.callCtx(ctx)
	defer cancel()
	ni, err := d.node.NodeGetInfo(cctx, &csipb.NodeGetInfoRequest{})
	if err != nil {
		d.conn.Close()
		return fmt.Errorf("error getting node info from CSI driver %s: %v", info.Name, err)
	}
	if ni.NodeId == "" {
		d.conn.Close()
		return fmt.Errorf("error while adding CSI driver node info: driverNodeID must not be empty")
	}
	d.NodeID = ni.NodeId
	var topology map[string]string
	if ni.AccessibleTopology != nil {
		topology = ni.AccessibleTopology.Segments
	}
	if err := r.recordDriver(ctx, info.Name, ni.NodeId, ni.MaxVolumesPerNode, topology); err != nil {
		d.conn.Close()
		return fmt.Errorf("error updating CSINode object with CSI driver node info: %v", err)
	}
	r.mu.Lock()
	if old := r.drivers[info.Name]; old != nil {
		old.conn.Close()
	}
	r.drivers[info.Name] = d
	r.sockets[socket] = info.Name
	r.mu.Unlock()
	return nil
}

// checkVersions accepts a driver that supports a CSI 1.x version (upstream's kubelet
// speaks 1.x only).
func checkVersions(name string, versions []string) error {
	if len(versions) == 0 {
		return fmt.Errorf("RegisterPlugin for CSI driver %q failed. Plugin returned an empty list for supported versions", name)
	}
	for _, v := range versions {
		if v == "1" || strings.HasPrefix(strings.TrimPrefix(v, "v"), "1.") {
			return nil
		}
	}
	return fmt.Errorf("RegisterPlugin for CSI driver %q failed. None of the versions specified %q are supported", name, versions)
}

// connect opens the driver's node service and reads its capabilities once.
func connect(ctx context.Context, name, endpoint string) (*Driver, error) {
	conn, err := dial(strings.TrimPrefix(endpoint, "unix://"))
	if err != nil {
		return nil, err
	}
	d := &Driver{Name: name, Endpoint: endpoint, conn: conn, node: csipb.NewNodeClient(conn), caps: map[csipb.NodeServiceCapability_RPC_Type]bool{}}
	cctx, cancel := context.WithTimeout(ctx, defaultCallTimeout)
	defer cancel()
	caps, err := d.node.NodeGetCapabilities(cctx, &csipb.NodeGetCapabilitiesRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("error getting node capabilities from CSI driver %s: %v", name, err)
	}
	for _, c := range caps.Capabilities {
		if rpc := c.GetRpc(); rpc != nil {
			d.caps[rpc.Type] = true
		}
	}
	return d, nil
}

func dial(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// gone deregisters the driver whose registration socket was removed: it leaves CSINode
// and the node's annotation, as upstream's DeRegisterPlugin.
func (r *Registry) gone(ctx context.Context, socket string) {
	r.mu.Lock()
	name, ok := r.sockets[socket]
	delete(r.sockets, socket)
	var d *Driver
	if ok {
		d = r.drivers[name]
		delete(r.drivers, name)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	if d != nil {
		d.conn.Close()
	}
	klog.FromContext(ctx).Info("Deregistered CSI driver", "driver", name)
	if err := r.forgetDriver(ctx, name); err != nil {
		klog.FromContext(ctx).Error(err, "Removing the CSI driver from the node failed", "driver", name)
	}
}

func (r *Registry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.drivers {
		d.conn.Close()
	}
}

// has reports whether the driver's node service has the capability.
func (d *Driver) has(c csipb.NodeServiceCapability_RPC_Type) bool { return d.caps[c] }

var errNoClient = errors.New("this node runs standalone: no API server")
