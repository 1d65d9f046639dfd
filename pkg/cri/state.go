package cri

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerState is one container instance as the runtime reports it.
type ContainerState string

// Container states (CRI's, named).
const (
	StateCreated ContainerState = "created"
	StateRunning ContainerState = "running"
	StateExited  ContainerState = "exited"
	StateUnknown ContainerState = "unknown"
)

// Sandbox is one pod sandbox instance.
type Sandbox struct {
	ID        string
	Attempt   uint32
	Ready     bool
	IPs       []string
	CreatedAt time.Time
}

// Container is one container instance (one attempt of a spec container).
type Container struct {
	ID           string
	Name         string
	SandboxID    string
	Init         bool
	RestartCount int
	Hash         string
	State        ContainerState
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	ExitCode     int32
	Reason       string // runtime's reason for the exit, e.g. OOMKilled, Completed, Error
	Message      string
	Image        string
	ImageRef     string
	LogPath      string
	TermMsgPath  string
	// TermMsgHostPath is the host file behind TermMsgPath.
	TermMsgHostPath string
	// TermMsgPolicy is the container's terminationMessagePolicy.
	TermMsgPolicy string
	// GracePeriod is the pod's terminationGracePeriodSeconds when the container was
	// created (-1: not recorded).
	GracePeriod int64
}

// PodState is everything the runtime has for one pod, newest first.
type PodState struct {
	UID        types.UID
	Sandboxes  []Sandbox
	Containers []Container
}

// Latest returns the newest instance of the named container, and the one before it.
func (s *PodState) Latest(name string) (latest, previous *Container) {
	for i := range s.Containers {
		c := &s.Containers[i]
		if c.Name != name {
			continue
		}
		if latest == nil {
			latest = c
		} else if previous == nil {
			previous = c
			break
		}
	}
	return latest, previous
}

// ReadySandbox returns the newest sandbox if it is ready.
func (s *PodState) ReadySandbox() *Sandbox {
	if len(s.Sandboxes) > 0 && s.Sandboxes[0].Ready {
		return &s.Sandboxes[0]
	}
	return nil
}

// statusCache remembers the status of exited containers, which never changes, so a sync
// asks the runtime only about containers that may still move.
type statusCache struct {
	mu sync.Mutex
	m  map[string]*runtimeapi.ContainerStatus
}

func (c *statusCache) get(id string) *runtimeapi.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *statusCache) put(id string, st *runtimeapi.ContainerStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*runtimeapi.ContainerStatus{}
	}
	c.m[id] = st
}

func (c *statusCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// PodState lists the runtime objects of one pod.
func (c *Client) PodState(ctx context.Context, node string, uid types.UID) (*PodState, error) {
	sel := map[string]string{LabelPodUID: string(uid), LabelNode: node}
	sbs, err := call(ctx, c, "list_podsandbox", c.runtime.ListPodSandbox, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	cts, err := call(ctx, c, "list_containers", c.runtime.ListContainers, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	st := &PodState{UID: uid}
	for _, sb := range sbs.Items {
		s := Sandbox{ID: sb.Id, Attempt: sb.GetMetadata().GetAttempt(), Ready: sb.State == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: time.Unix(0, sb.CreatedAt)}
		if s.Ready {
			ss, err := call(ctx, c, "podsandbox_status", c.runtime.PodSandboxStatus, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.Id})
			if err == nil && ss.GetStatus().GetNetwork() != nil {
				n := ss.GetStatus().GetNetwork()
				if n.Ip != "" {
					s.IPs = append(s.IPs, n.Ip)
				}
				for _, ip := range n.AdditionalIps {
					s.IPs = append(s.IPs, ip.Ip)
				}
			}
		}
		st.Sandboxes = append(st.Sandboxes, s)
	}
	sort.Slice(st.Sandboxes, func(i, j int) bool {
		a, b := st.Sandboxes[i], st.Sandboxes[j]
		if a.Attempt != b.Attempt {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	for _, ct := range cts.Containers {
		cs := c.exited.get(ct.Id)
		if cs == nil {
			resp, err := call(ctx, c, "container_status", c.runtime.ContainerStatus, &runtimeapi.ContainerStatusRequest{ContainerId: ct.Id})
			if err != nil {
				continue // removed meanwhile
			}
			cs = resp.GetStatus()
			if cs.State == runtimeapi.ContainerState_CONTAINER_EXITED {
				c.exited.put(ct.Id, cs)
			}
		}
		st.Containers = append(st.Containers, toContainer(ct, cs))
	}
	sort.Slice(st.Containers, func(i, j int) bool {
		a, b := st.Containers[i], st.Containers[j]
		if a.RestartCount != b.RestartCount {
			return a.RestartCount > b.RestartCount
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	return st, nil
}

func toContainer(ct *runtimeapi.Container, cs *runtimeapi.ContainerStatus) Container {
	rc, _ := strconv.Atoi(ct.Annotations[AnnotationRestartCount])
	grace, err := strconv.ParseInt(ct.Annotations[AnnotationGracePeriod], 10, 64)
	if err != nil {
		grace = -1
	}
	out := Container{
		ID: ct.Id, Name: ct.GetMetadata().GetName(), SandboxID: ct.PodSandboxId,
		Init: ct.Annotations[AnnotationInit] == "true", RestartCount: rc, Hash: ct.Annotations[AnnotationHash],
		CreatedAt: time.Unix(0, ct.CreatedAt), Image: ct.GetImage().GetImage(), ImageRef: ct.ImageRef,
		TermMsgPath: ct.Annotations[AnnotationTermMsgPath], TermMsgHostPath: ct.Annotations[AnnotationTermMsgHostPath],
		GracePeriod: grace, TermMsgPolicy: ct.Annotations[AnnotationTermMsgPolicy],
	}
	switch cs.GetState() {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		out.State = StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		out.State = StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		out.State = StateExited
	default:
		out.State = StateUnknown
	}
	if cs != nil {
		if cs.StartedAt > 0 {
			out.StartedAt = time.Unix(0, cs.StartedAt)
		}
		if cs.FinishedAt > 0 {
			out.FinishedAt = time.Unix(0, cs.FinishedAt)
		}
		out.ExitCode, out.Reason, out.Message, out.LogPath = cs.ExitCode, cs.Reason, cs.Message, cs.LogPath
		if cs.GetImage().GetImage() != "" {
			out.Image = cs.GetImage().GetImage()
		}
		if cs.ImageRef != "" {
			out.ImageRef = cs.ImageRef
		}
	}
	return out
}

// PodUIDs lists the pod UIDs that have sandboxes of this node in the runtime.
func (c *Client) PodUIDs(ctx context.Context, node string) (map[types.UID]bool, error) {
	sbs, err := call(ctx, c, "list_podsandbox", c.runtime.ListPodSandbox, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelNode: node}}})
	if err != nil {
		return nil, err
	}
	out := map[types.UID]bool{}
	for _, sb := range sbs.Items {
		out[types.UID(sb.Labels[LabelPodUID])] = true
	}
	return out, nil
}
