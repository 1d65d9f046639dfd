package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
)

// Annotations of static and mirror pods, as upstream.
const (
	AnnotationConfigHash   = "kubernetes.io/config.hash"
	AnnotationConfigSource = "kubernetes.io/config.source"
	AnnotationConfigSeen   = "kubernetes.io/config.seen"
	AnnotationConfigMirror = "kubernetes.io/config.mirror"
)

// IsStatic reports whether pod came from a manifest file.
func IsStatic(pod *v1.Pod) bool { return pod.Annotations[AnnotationConfigSource] == "file" }

// IsMirror reports whether pod is the API's mirror of a static pod.
func IsMirror(pod *v1.Pod) bool { _, ok := pod.Annotations[AnnotationConfigMirror]; return ok }

// Static reads pod manifests (YAML or JSON, one pod per file) from a folder, re-reading
// it every period: a new file adds a pod, an edited one replaces it (a new UID, so the old
// pod is stopped), a removed one removes it. A file that is not a valid pod is logged with
// its name and skipped; the other files still run.
type Static struct {
	dir    string
	node   string
	period time.Duration
	h      Handler

	mu     sync.Mutex
	pods   map[string]*v1.Pod // by file
	bad    map[string]string  // file -> content hash last reported as bad
	synced bool
}

// NewStatic returns a source for dir; Run delivers its pods to h.
func NewStatic(dir, node string, period time.Duration, h Handler) *Static {
	if period <= 0 {
		period = time.Second
	}
	return &Static{dir: dir, node: node, period: period, h: h, pods: map[string]*v1.Pod{}, bad: map[string]string{}}
}

// HasSynced reports whether the folder was read once.
func (s *Static) HasSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// Pods returns the static pods now read.
func (s *Static) Pods() []*v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*v1.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p)
	}
	return out
}

// Run reads the folder until ctx ends.
func (s *Static) Run(ctx context.Context) {
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		s.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Static) scan(ctx context.Context) {
	logger := klog.FromContext(ctx)
	entries, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.Error(err, "Reading static pod folder failed", "path", s.dir)
		return
	}
	seen := map[string]*v1.Pod{}
	for _, e := range entries {
		// Hidden files (editors' swap files ...) are skipped, as upstream.
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		file := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			logger.Error(err, "Reading static pod manifest failed", "file", file)
			continue
		}
		pod, err := DecodeStaticPod(data, file, s.node)
		if err != nil {
			sum := contentHash(data)
			if s.bad[file] != sum { // once per content, not every period
				s.bad[file] = sum
				logger.Error(err, "Skipping invalid static pod manifest", "file", file)
			}
			continue
		}
		delete(s.bad, file)
		seen[file] = pod
	}
	s.mu.Lock()
	old := s.pods
	s.pods = seen
	s.synced = true
	s.mu.Unlock()
	for file, p := range old {
		if n, ok := seen[file]; !ok || n.UID != p.UID {
			s.h.Remove(p)
		}
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		if o, ok := old[f]; !ok || o.UID != seen[f].UID {
			s.h.Update(seen[f])
		}
	}
}

func contentHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// DecodeStaticPod parses one manifest and completes it as upstream does for file pods:
// name suffixed with the node name, namespace "default" when unset, a UID hashed from the
// node, the file and its content, the config annotations, bound to the node, tolerating
// every NoExecute taint, and the API's defaults the kubelet relies on.
func DecodeStaticPod(data []byte, file, node string) (*v1.Pod, error) {
	var pod v1.Pod
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	if err := dec.Decode(&pod); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no pod in the file", file)
		}
		return nil, fmt.Errorf("%s: not a pod manifest: %w", file, err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return nil, fmt.Errorf("%s: kind %q, want Pod", file, pod.Kind)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("%s: invalid pod: metadata.name: Required value: name is required", file)
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%s: invalid pod: spec.containers: Required value", file)
	}
	pod.Name = pod.Name + "-" + strings.ToLower(node)
	if msgs := validation.IsDNS1123Subdomain(pod.Name); len(msgs) > 0 {
		return nil, fmt.Errorf("%s: invalid pod name %q: %s", file, pod.Name, strings.Join(msgs, "; "))
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	h := sha256.New()
	fmt.Fprintf(h, "host:%s\nfile:%s\n", node, file)
	h.Write(data)
	pod.UID = types.UID(hex.EncodeToString(h.Sum(nil))[:32])
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationConfigHash] = string(pod.UID)
	pod.Annotations[AnnotationConfigSource] = "file"
	pod.Annotations[AnnotationConfigSeen] = time.Now().Format(time.RFC3339Nano)
	pod.Spec.NodeName = node
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute})
	defaultPodSpec(&pod.Spec)
	// The API server would refuse these; a static pod never meets it.
	if errs := dns.ValidatePodSpec(&pod.Spec, field.NewPath("spec")); len(errs) > 0 {
		return nil, fmt.Errorf("%s: invalid pod: %w", file, errs.ToAggregate())
	}
	return &pod, nil
}

// defaultPodSpec fills the defaults the apiserver would have set on an API pod.
func defaultPodSpec(s *v1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = v1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = v1.DNSClusterFirst
	}
	if s.TerminationGracePeriodSeconds == nil {
		g := int64(v1.DefaultTerminationGracePeriodSeconds)
		s.TerminationGracePeriodSeconds = &g
	}
	if s.SchedulerName == "" {
		s.SchedulerName = v1.DefaultSchedulerName
	}
	for _, list := range []([]v1.Container){s.InitContainers, s.Containers} {
		for i := range list {
			c := &list[i]
			if c.TerminationMessagePath == "" {
				c.TerminationMessagePath = v1.TerminationMessagePathDefault
			}
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = v1.TerminationMessageReadFile
			}
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = v1.PullIfNotPresent
				// ":latest" or no tag at all means Always, as the apiserver defaults it.
				if ref, err := name.ParseReference(c.Image, name.WeakValidation); err == nil {
					if tag, ok := ref.(name.Tag); ok && tag.TagStr() == "latest" {
						c.ImagePullPolicy = v1.PullAlways
					}
				}
			}
			for j := range c.Ports {
				if c.Ports[j].Protocol == "" {
					c.Ports[j].Protocol = v1.ProtocolTCP
				}
			}
		}
	}
}
