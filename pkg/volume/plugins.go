package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/fieldpath"
	"github.com/minikubelet/minikubelet/pkg/nodeauth"
	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// Upstream's plugin folder names.
const (
	pluginEmptyDir  = "kubernetes.io~empty-dir"
	pluginConfigMap = "kubernetes.io~configmap"
	pluginSecret    = "kubernetes.io~secret"
	pluginDownward  = "kubernetes.io~downward-api"
	pluginProjected = "kubernetes.io~projected"
)

const defaultMode = 0o644

func (m *Manager) volumeDir(pod *v1.Pod, plugin, name string) string {
	return filepath.Join(m.podVolumesDir(pod.UID), plugin, name)
}

// setUpOne prepares one volume; it is idempotent and rewrites content only on change.
func (m *Manager) setUpOne(ctx context.Context, pod *v1.Pod, podIPs []string, vol *v1.Volume) (Mount, error) {
	if m.cfg.Client == nil && (vol.ConfigMap != nil || vol.Secret != nil || vol.Projected != nil) {
		return Mount{}, fmt.Errorf("volume type %s needs an API server; this node runs standalone", sourceKey(&vol.VolumeSource))
	}
	gid := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		gid = int(*sc.FSGroup)
	}
	src := &vol.VolumeSource
	switch {
	case src.EmptyDir != nil:
		dir := m.volumeDir(pod, pluginEmptyDir, vol.Name)
		return Mount{HostPath: dir}, setUpEmptyDir(dir, src.EmptyDir, gid)
	case src.HostPath != nil:
		return Mount{HostPath: src.HostPath.Path}, checkHostPath(src.HostPath)
	case src.ConfigMap != nil:
		files, err := m.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, src.ConfigMap.DefaultMode)
		return writeContent(m.volumeDir(pod, pluginConfigMap, vol.Name), files, err, false, gid)
	case src.Secret != nil:
		// Secrets never touch the disk: the folder is a tmpfs.
		files, err := m.secretFiles(ctx, pod.Namespace, src.Secret.SecretName, src.Secret.Items, src.Secret.Optional, src.Secret.DefaultMode)
		return writeContent(m.volumeDir(pod, pluginSecret, vol.Name), files, err, true, gid)
	case src.DownwardAPI != nil:
		files, err := m.downwardFiles(pod, podIPs, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode)
		return writeContent(m.volumeDir(pod, pluginDownward, vol.Name), files, err, false, gid)
	case src.Projected != nil:
		files, err := m.projectedFiles(ctx, pod, podIPs, vol.Name, src.Projected)
		return writeContent(m.volumeDir(pod, pluginProjected, vol.Name), files, err, true, gid)
	case src.Image != nil:
		return imageVolume(), nil
	case src.CSI != nil:
		c := src.CSI
		vol := csi.Volume{Driver: c.Driver, Handle: csi.InlineHandle(string(pod.UID), vol.Name), SpecName: vol.Name,
			Attributes: c.VolumeAttributes, ReadOnly: c.ReadOnly != nil && *c.ReadOnly, Ephemeral: true}
		if c.FSType != nil {
			vol.FSType = *c.FSType
		}
		if c.NodePublishSecretRef != nil {
			vol.PublishSecret = &v1.SecretReference{Name: c.NodePublishSecretRef.Name, Namespace: pod.Namespace}
		}
		return m.setUpCSI(ctx, pod, vol)
	}
	return Mount{}, fmt.Errorf("volume type %s is not supported by minikubelet", sourceKey(src))
}

// writeContent writes a content volume's files (read into files, or failed with readErr) into
// dir with the atomic swap, on a tmpfs when memory is set; content volumes are mounted
// read-only.
func writeContent(dir string, files map[string]File, readErr error, memory bool, gid int) (Mount, error) {
	if readErr != nil {
		return Mount{}, readErr
	}
	if memory {
		if err := ensureTmpfs(dir, ""); err != nil {
			return Mount{}, err
		}
	}
	_, err := writeAtomic(dir, files, gid)
	return Mount{HostPath: dir, ReadOnly: true}, err
}

// sourceKey names a volume or PV source's type as the API spells it (e.g.
// persistentVolumeClaim, csi): its first JSON key.
func sourceKey(src any) string {
	b, err := json.Marshal(src)
	if err != nil {
		return "unknown"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || len(m) == 0 {
		return "unknown"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0]
}

func setUpEmptyDir(dir string, ed *v1.EmptyDirVolumeSource, gid int) error {
	if ed.Medium == v1.StorageMediumMemory {
		size := ""
		if ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			size = fmt.Sprint(ed.SizeLimit.Value())
		}
		if err := ensureTmpfs(dir, size); err != nil {
			return err
		}
	} else if ed.Medium != v1.StorageMediumDefault {
		return fmt.Errorf("emptyDir medium %q is not supported by minikubelet", ed.Medium)
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// Anyone in the pod may write, as upstream; with fsGroup the group owns it (setgid).
	mode := os.FileMode(0o777)
	if gid >= 0 {
		if err := os.Lchown(dir, -1, gid); err != nil {
			return err
		}
		mode |= os.ModeSetgid
	}
	return os.Chmod(dir, mode)
}

// checkHostPath applies the hostPath type checks (and creations) as upstream words them.
func checkHostPath(hp *v1.HostPathVolumeSource) error {
	typ := v1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	p := hp.Path
	fi, statErr := os.Stat(p)
	switch typ {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if os.IsNotExist(statErr) {
			return os.MkdirAll(p, 0o755)
		}
		fallthrough
	case v1.HostPathDirectory:
		if statErr != nil || !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", p)
		}
	case v1.HostPathFileOrCreate:
		if os.IsNotExist(statErr) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil && !os.IsExist(err) {
				return err
			}
			if f != nil {
				return f.Close()
			}
			return nil
		}
		fallthrough
	case v1.HostPathFile:
		if statErr != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", p)
		}
	case v1.HostPathSocket:
		if statErr != nil || fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", p)
		}
	case v1.HostPathCharDev:
		if statErr != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", p)
		}
	case v1.HostPathBlockDev:
		if statErr != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", p)
		}
	default:
		return fmt.Errorf("hostPath type %q is not supported", typ)
	}
	return nil
}

func modeOr(m *int32, def os.FileMode) os.FileMode {
	if m != nil {
		return os.FileMode(*m) & os.ModePerm
	}
	return def
}

// keyFiles turns a configMap's or secret's data into files: every key, or only items
// (a missing key is an error unless optional).
func keyFiles(data map[string][]byte, items []v1.KeyToPath, optional bool, mode os.FileMode, kind string) (map[string]File, error) {
	files := map[string]File{}
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			if err := validFilePath(k); err != nil {
				return nil, err
			}
			files[k] = File{Data: data[k], Mode: mode}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s references non-existent %s key: %s", kind, map[string]string{"configmap": "config", "secret": "secret"}[kind], it.Key)
		}
		if err := validFilePath(it.Path); err != nil {
			return nil, err
		}
		files[it.Path] = File{Data: v, Mode: modeOr(it.Mode, mode)}
	}
	return files, nil
}

func (m *Manager) configMapFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, mode *int32) (map[string]File, error) {
	return objectFiles("configmap", name, items, optional, mode, func() (map[string][]byte, error) {
		return readOnce(ctx, "configmap", ns, name, func() (map[string][]byte, error) {
			cm, err := nodeauth.Get(ctx, func(ctx context.Context) (*v1.ConfigMap, error) {
				return m.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			})
			if err != nil {
				return nil, err
			}
			data := map[string][]byte{}
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
			for k, v := range cm.BinaryData {
				data[k] = v
			}
			return data, nil
		})
	})
}

func (m *Manager) secretFiles(ctx context.Context, ns, name string, items []v1.KeyToPath, optional *bool, mode *int32) (map[string]File, error) {
	return objectFiles("secret", name, items, optional, mode, func() (map[string][]byte, error) {
		return readOnce(ctx, "secret", ns, name, func() (map[string][]byte, error) {
			s, err := nodeauth.Get(ctx, func(ctx context.Context) (*v1.Secret, error) {
				return m.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			})
			if err != nil {
				return nil, err
			}
			return s.Data, nil
		})
	})
}

// objectFiles reads a configMap's or secret's data (get) into files; a missing object is
// an empty volume when optional, else upstream's "<kind> "name" not found".
func objectFiles(kind, name string, items []v1.KeyToPath, optional *bool, mode *int32, get func() (map[string][]byte, error)) (map[string]File, error) {
	opt := optional != nil && *optional
	data, err := get()
	if apierrors.IsNotFound(err) {
		if opt {
			return map[string]File{}, nil
		}
		return nil, fmt.Errorf("%s %q not found", kind, name)
	}
	if err != nil {
		return nil, err
	}
	return keyFiles(data, items, opt, modeOr(mode, defaultMode), kind)
}

func (m *Manager) downwardFiles(pod *v1.Pod, podIPs []string, items []v1.DownwardAPIVolumeFile, mode *int32) (map[string]File, error) {
	files := map[string]File{}
	def := modeOr(mode, defaultMode)
	for _, it := range items {
		if err := validFilePath(it.Path); err != nil {
			return nil, err
		}
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = fieldpath.Value(fieldpath.Pod{Pod: pod, PodIPs: podIPs}, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("container %q not found in pod for resourceFieldRef of %s", it.ResourceFieldRef.ContainerName, it.Path)
			}
			val, err = fieldpath.Resource(c, it.ResourceFieldRef, fieldpath.UnsetLimits(pod, m.cfg.Allocatable))
		default:
			return nil, fmt.Errorf("downwardAPI item %s has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err != nil {
			return nil, err
		}
		files[it.Path] = File{Data: []byte(val), Mode: modeOr(it.Mode, def)}
	}
	return files, nil
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func (m *Manager) projectedFiles(ctx context.Context, pod *v1.Pod, podIPs []string, volName string, p *v1.ProjectedVolumeSource) (map[string]File, error) {
	files := map[string]File{}
	mode := modeOr(p.DefaultMode, defaultMode)
	add := func(fs map[string]File, err error) error {
		if err != nil {
			return err
		}
		for k, v := range fs {
			files[k] = v
		}
		return nil
	}
	for i, s := range p.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			m32 := int32(mode)
			err = add(m.configMapFiles(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, &m32))
		case s.Secret != nil:
			m32 := int32(mode)
			err = add(m.secretFiles(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional, &m32))
		case s.DownwardAPI != nil:
			m32 := int32(mode)
			err = add(m.downwardFiles(pod, podIPs, s.DownwardAPI.Items, &m32))
		case s.ServiceAccountToken != nil:
			if verr := validFilePath(s.ServiceAccountToken.Path); verr != nil {
				return nil, verr
			}
			var tok string
			tok, err = m.tokens.get(ctx, pod, s.ServiceAccountToken)
			files[s.ServiceAccountToken.Path] = File{Data: []byte(tok), Mode: mode}
		case s.ClusterTrustBundle != nil:
			err = add(m.trustBundleFiles(ctx, s.ClusterTrustBundle, mode))
		case s.PodCertificate != nil:
			err = add(m.podCertificateFiles(ctx, pod, volName, i, s.PodCertificate, mode))
		default:
			err = fmt.Errorf("projected volume source of this type is not supported by minikubelet")
		}
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}
