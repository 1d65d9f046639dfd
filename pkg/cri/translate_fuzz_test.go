package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzTranslate: pod -> CRI translation never panics, whatever the names, commands, env,
// ports, hostname and DNS settings; a translated config carries the pod's identity labels.
func FuzzTranslate(f *testing.F) {
	f.Add("p", "ns", "uid", "c", "busybox", "echo $(A) $$(B)", "A", "1", int32(80), int32(8080), "host", "sub", "ClusterFirst", int64(1000))
	f.Add("", "", "", "", "", "", "", "", int32(-1), int32(0), "", "", "None", int64(-1))
	f.Fuzz(func(t *testing.T, name, ns, uid, cname, image, cmd, envName, envVal string, cport, hport int32, hostname, subdomain, dnsPolicy string, user int64) {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: k8stypes.UID("u" + uid)}, Spec: v1.PodSpec{
			Hostname: hostname, Subdomain: subdomain, DNSPolicy: v1.DNSPolicy(dnsPolicy),
			SecurityContext: &v1.PodSecurityContext{RunAsUser: &user},
			Containers: []v1.Container{{Name: cname, Image: image, Command: []string{"sh", "-c", cmd},
				Env:   []v1.EnvVar{{Name: envName, Value: envVal}},
				Ports: []v1.ContainerPort{{ContainerPort: cport, HostPort: hport}}}},
		}}
		sb, err := SandboxConfig(pod, 0, SandboxOptions{NodeName: "n", PodLogsDir: "/logs", DNS: &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}}, ClusterDomain: "k8s.test", CgroupsPerQOS: true, CgroupRoot: "/"})
		if err == nil && (sb.Labels[LabelPodUID] != string(pod.UID) || sb.Metadata.Name != name) {
			t.Fatalf("sandbox lost the pod's identity: %v", sb.Labels)
		}
		env := []*runtimeapi.KeyValue{{Key: envName, Value: []byte(envVal)}}
		cc, err := ContainerConfig(pod, &pod.Spec.Containers[0], ContainerOptions{NodeName: "n", ImageRef: image, Env: env})
		if err == nil && (cc.Labels[LabelContainer] != cname || cc.Labels[LabelPodUID] != string(pod.UID)) {
			t.Fatalf("container lost its identity: %v", cc.Labels)
		}
	})
}
