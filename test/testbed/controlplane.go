package testbed

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ServiceCIDR is virtual only: no kube-proxy runs, so nothing is ever routed there.
const ServiceCIDR = "10.96.0.0/16"

func (b *Bed) startEtcd() error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	cu := "http://127.0.0.1:" + strconv.Itoa(client)
	pu := "http://127.0.0.1:" + strconv.Itoa(peer)
	args := []string{
		"--name=testbed", "--data-dir=" + filepath.Join(b.Dir, "etcd"),
		"--listen-client-urls=" + cu, "--advertise-client-urls=" + cu,
		"--listen-peer-urls=" + pu, "--initial-advertise-peer-urls=" + pu,
		"--initial-cluster=testbed=" + pu, "--log-level=warn",
	}
	if !b.opts.EtcdFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	p, err := b.start("etcd", filepath.Join(b.ToolsBin, "etcd"), args, nil)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	b.EtcdURL = cu
	return waitFor(60*time.Second, p, func() error {
		resp, err := http.Get(cu + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("etcd health: %s", resp.Status)
		}
		return nil
	})
}

func (b *Bed) startAPIServer() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	pki := b.PKI
	srvCrt, srvKey, err := pki.Issue("apiserver", "kube-apiserver", nil,
		[]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.96.0.1"})
	if err != nil {
		return err
	}
	kcCrt, kcKey, err := pki.Issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil)
	if err != nil {
		return err
	}
	// The aggregation layer's front proxy, as kubeadm sets it up, so extension API servers
	// (metrics-server) can be registered.
	fpCrt, fpKey, err := pki.Issue("front-proxy-client", "front-proxy-client", nil, nil)
	if err != nil {
		return err
	}
	b.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	p, err := b.start("kube-apiserver", filepath.Join(b.ToolsBin, "kube-apiserver"), []string{
		"--etcd-servers=" + b.EtcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--endpoint-reconciler-type=none",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=" + pki.CAFile(),
		"--tls-cert-file=" + srvCrt, "--tls-private-key-file=" + srvKey,
		"--kubelet-client-certificate=" + kcCrt, "--kubelet-client-key=" + kcKey,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.path("sa.pub"),
		"--service-account-signing-key-file=" + pki.path("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(b.Dir, "apiserver-certs"),
		"--requestheader-client-ca-file=" + pki.CAFile(),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + fpCrt, "--proxy-client-key-file=" + fpKey,
	}, nil)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)

	adminCrt, adminKey, err := pki.Issue("admin", "testbed-admin", []string{"system:masters"}, nil)
	if err != nil {
		return err
	}
	b.AdminKubeconfig = filepath.Join(b.Dir, "admin.kubeconfig")
	if err := WriteKubeconfig(b.AdminKubeconfig, b.APIServerURL, pki.CAFile(), adminCrt, adminKey); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", b.AdminKubeconfig)
	if err != nil {
		return err
	}
	b.Client, err = kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	return b.waitAPIReady(p, 3*time.Minute)
}

// waitAPIReady waits until the API server process p answers /readyz.
func (b *Bed) waitAPIReady(p *Proc, timeout time.Duration) error {
	return waitFor(timeout, p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body, err := b.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("readyz: %v %s", err, body)
		}
		return nil
	})
}

func (b *Bed) componentKubeconfig(name, cn string) (string, error) {
	crt, key, err := b.PKI.Issue(name, cn, nil, nil)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.Dir, name+".kubeconfig")
	return path, WriteKubeconfig(path, b.APIServerURL, b.PKI.CAFile(), crt, key)
}

func (b *Bed) startControllers() error {
	kcm, err := b.componentKubeconfig("controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	p, err := b.start("kube-controller-manager", filepath.Join(b.ToolsBin, "kube-controller-manager"), []string{
		"--kubeconfig=" + kcm, "--authentication-kubeconfig=" + kcm, "--authorization-kubeconfig=" + kcm,
		"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
		"--controllers=*,bootstrapsigner,tokencleaner",
		"--cluster-signing-cert-file=" + b.PKI.CAFile(), "--cluster-signing-key-file=" + b.PKI.CAKeyFile(),
		"--root-ca-file=" + b.PKI.CAFile(),
		"--service-account-private-key-file=" + b.PKI.path("sa.key"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allocate-node-cidrs=false",
		"--profiling=false",
	}, nil)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	sched, err := b.componentKubeconfig("scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	s, err := b.start("kube-scheduler", filepath.Join(b.ToolsBin, "kube-scheduler"), []string{
		"--kubeconfig=" + sched, "--authentication-kubeconfig=" + sched, "--authorization-kubeconfig=" + sched,
		"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--profiling=false",
	}, nil)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, s)
	// Pods are admitted only once the namespace's default ServiceAccount exists.
	return waitFor(2*time.Minute, p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := b.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("default service account not created yet")
		}
		return err
	})
}

// NodeKubeconfig writes a kubeconfig with a client certificate for system:node:<name>.
func (b *Bed) NodeKubeconfig(name string) (string, error) {
	crt, key, err := b.PKI.Issue("node-"+name, "system:node:"+name, []string{"system:nodes"}, nil)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.Dir, "node-"+name+".kubeconfig")
	return path, WriteKubeconfig(path, b.APIServerURL, b.PKI.CAFile(), crt, key)
}
