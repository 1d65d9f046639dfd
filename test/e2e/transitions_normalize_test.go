package e2e

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The transition suite's normalisations: the only parts of a pod's status and events that
// are not compared, each because it cannot be equal between two runs. docs/differences.md
// lists them too.

// fieldRules replace a status field's value (by its JSON name, anywhere in the status)
// when it is set.
var fieldRules = map[string]struct{ value, why string }{
	"startTime":          {"<time>", "wall-clock time of the run"},
	"startedAt":          {"<time>", "wall-clock time of the run"},
	"finishedAt":         {"<time>", "wall-clock time of the run"},
	"lastTransitionTime": {"<time>", "wall-clock time of the run"},
	"lastProbeTime":      {"<time>", "wall-clock time of the run"},
	"containerID":        {"<container-id>", "the runtime's random ID of the container"},
	"hostIP":             {"<node-ip>", "the upstream kubelet refuses a loopback node address, so its node has 10.99.0.1"},
	"podIP":              {"<pod-ip>", "the CNI plugin's next free address"},
}

const epoch = "1970-01-01T00:00:00Z"

// listRules are fields holding a list of {ip: ...} objects.
var listRules = map[string]string{"hostIPs": "<node-ip>", "podIPs": "<pod-ip>"}

// textRules rewrite strings (messages, in the status and in events).
var textRules = []struct {
	re        *regexp.Regexp
	with, why string
}{
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "<id>", "runtime IDs of containers and sandboxes named in messages"},
	{regexp.MustCompile(` in [0-9.]+[µnm]?s \([0-9.]+[µnm]?s including waiting\)`), " in <duration> (<duration> including waiting)", "pull times"},
}

// normalizer knows the values of one pod's run that appear in text: its UID, its
// addresses and the node's root directory.
type normalizer struct {
	rootDir string
	uid     string
	podIPs  map[string]bool
}

func newNormalizer(k *testbed.Kubelet) *normalizer {
	return &normalizer{rootDir: k.RootDir, podIPs: map[string]bool{}}
}

// status returns p's status as a generic object with the rules applied.
func (n *normalizer) status(p *v1.Pod) map[string]any {
	n.uid = string(p.UID)
	for _, ip := range p.Status.PodIPs {
		n.podIPs[ip.IP] = true
	}
	b, err := json.Marshal(p.Status)
	if err != nil {
		panic(err) // a PodStatus always marshals
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return n.walk(m).(map[string]any)
}

func (n *normalizer) walk(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if r, ok := fieldRules[k]; ok && x != nil && x != "" {
				v[k] = r.value
				if r.value == "<time>" && x == epoch {
					v[k] = "<epoch>" // a fixed value (e.g. startedAt of a container that never started)
				}
				continue
			}
			if with, ok := listRules[k]; ok {
				if l, ok := x.([]any); ok {
					for _, e := range l {
						if o, ok := e.(map[string]any); ok {
							o["ip"] = with
						}
					}
					continue
				}
			}
			v[k] = n.walk(x)
		}
		return v
	case []any:
		for i := range v {
			v[i] = n.walk(v[i])
		}
		return v
	case string:
		return n.text(v)
	}
	return v
}

// text applies the text rules and replaces this run's own values by their names.
func (n *normalizer) text(s string) string {
	for _, r := range textRules {
		s = r.re.ReplaceAllString(s, r.with)
	}
	s = strings.ReplaceAll(s, bed.Registry.Host, "<registry>") // a free port of each run
	if n.rootDir != "" {
		s = strings.ReplaceAll(s, n.rootDir, "<root-dir>")
	}
	if n.uid != "" {
		s = strings.ReplaceAll(s, n.uid, "<pod-uid>")
	}
	// Pod addresses only: minikubelet's node address is 127.0.0.1, which messages also
	// use for local registries.
	ips := make([]string, 0, len(n.podIPs))
	for ip := range n.podIPs {
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool { return len(ips[i]) > len(ips[j]) }) // longest first
	for _, ip := range ips {
		s = strings.ReplaceAll(s, ip, "<pod-ip>")
	}
	return s
}
