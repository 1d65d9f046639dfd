package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pullAuth returns the credentials from the pod's imagePullSecrets that match image's
// registry (kubernetes.io/dockerconfigjson secrets).
func (p *Puller) pullAuth(ctx context.Context, pod *v1.Pod, image string) []*runtimeapi.AuthConfig {
	host := image
	if i := strings.IndexByte(host, '/'); i > 0 && strings.ContainsAny(host[:i], ".:") {
		host = host[:i]
	} else {
		host = "docker.io"
	}
	var out []*runtimeapi.AuthConfig
	if p.cfg.Client == nil {
		return nil
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		sec, err := p.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		var cfg struct {
			Auths map[string]struct {
				Username, Password, Auth string
			} `json:"auths"`
		}
		if json.Unmarshal(sec.Data[v1.DockerConfigJsonKey], &cfg) != nil {
			continue
		}
		for server, a := range cfg.Auths {
			server = strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
			server = strings.TrimSuffix(strings.SplitN(server, "/", 2)[0], "/")
			if server != host && !(host == "docker.io" && server == "index.docker.io") {
				continue
			}
			u, pw := a.Username, a.Password
			if a.Auth != "" {
				if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					u, pw, _ = strings.Cut(string(dec), ":")
				}
			}
			// The host is matched here; containerd 1.6 drops credentials whose
			// ServerAddress is not a URL it can parse, so it is left empty.
			out = append(out, &runtimeapi.AuthConfig{Username: u, Password: pw})
		}
	}
	return out
}
