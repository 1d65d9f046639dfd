package cri

import (
	"slices"
	"sort"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
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
	// User is the identity the runtime reports the process runs as (containerd 2.x does;
	// 1.6 reports none), as upstream shows it in containerStatuses[].user.
	User *v1.ContainerUser
}

// StateOf names a CRI container state.
func StateOf(s runtimeapi.ContainerState) ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
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

// AnyRunning: a container runs, or may (its state is unknown).
func (s *PodState) AnyRunning() bool {
	return slices.ContainsFunc(s.Containers, Container.MayRun)
}

// MayRun: the container runs, or may (its state is unknown), so stopping it is due.
func (c Container) MayRun() bool { return c.State == StateRunning || c.State == StateUnknown }

// ReadySandbox returns the newest sandbox if it is ready.
func (s *PodState) ReadySandbox() *Sandbox {
	if len(s.Sandboxes) > 0 && s.Sandboxes[0].Ready {
		return &s.Sandboxes[0]
	}
	return nil
}

// Sort orders sandboxes and containers newest first (by attempt / restart count, then
// creation time), the order Latest and ReadySandbox rely on.
func (s *PodState) Sort() {
	sort.Slice(s.Sandboxes, func(i, j int) bool {
		a, b := s.Sandboxes[i], s.Sandboxes[j]
		if a.Attempt != b.Attempt {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	sort.Slice(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.RestartCount != b.RestartCount {
			return a.RestartCount > b.RestartCount
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
}

// NewSandbox is the model of a sandbox from its status (IPs only while it is ready).
func NewSandbox(ss *runtimeapi.PodSandboxStatus) Sandbox {
	s := Sandbox{ID: ss.GetId(), Attempt: ss.GetMetadata().GetAttempt(), Ready: ss.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: time.Unix(0, ss.GetCreatedAt())}
	if n := ss.GetNetwork(); s.Ready && n != nil {
		if n.Ip != "" {
			s.IPs = append(s.IPs, n.Ip)
		}
		for _, ip := range n.AdditionalIps {
			s.IPs = append(s.IPs, ip.Ip)
		}
	}
	return s
}

// NewContainer is the model of a container from its status and its sandbox's ID (which
// the status does not carry).
func NewContainer(sandboxID string, cs *runtimeapi.ContainerStatus) Container {
	return toContainer(&runtimeapi.Container{Id: cs.GetId(), PodSandboxId: sandboxID, Metadata: cs.GetMetadata(),
		Image: cs.GetImage(), ImageRef: cs.GetImageRef(), CreatedAt: cs.GetCreatedAt(), Annotations: cs.GetAnnotations()}, cs)
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
	out.State = StateOf(cs.GetState())
	out.User = containerUser(cs.GetUser())
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

// containerUser converts the runtime's ContainerUser; nil when it reports none.
func containerUser(u *runtimeapi.ContainerUser) *v1.ContainerUser {
	if u == nil {
		return nil
	}
	out := &v1.ContainerUser{}
	if l := u.GetLinux(); l != nil {
		out.Linux = &v1.LinuxContainerUser{UID: l.GetUid(), GID: l.GetGid(), SupplementalGroups: l.GetSupplementalGroups()}
	}
	return out
}
