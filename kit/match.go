package kit

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// A Matcher picks the pod status a test waits for (WaitForTransition). String describes
// it in failure messages.
type Matcher interface {
	Match(p *v1.Pod) bool
	String() string
}

type matcher struct {
	desc string
	f    func(*v1.Pod) bool
}

func (m matcher) Match(p *v1.Pod) bool { return m.f(p) }
func (m matcher) String() string       { return m.desc }

// Match is a Matcher from any predicate, described by desc.
func Match(desc string, f func(*v1.Pod) bool) Matcher { return matcher{desc, f} }

// Phase matches the pod's phase.
func Phase(phase v1.PodPhase) Matcher {
	return Match("phase="+string(phase), func(p *v1.Pod) bool { return p.Status.Phase == phase })
}

// Condition matches a pod condition's status (a missing condition matches nothing).
func Condition(t v1.PodConditionType, s v1.ConditionStatus) Matcher {
	return Match(fmt.Sprintf("%s=%s", t, s), func(p *v1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == t {
				return c.Status == s
			}
		}
		return false
	})
}

// Ready matches the pod's Ready condition True; NotReady its Ready condition False.
func Ready() Matcher    { return Condition(v1.PodReady, v1.ConditionTrue) }
func NotReady() Matcher { return Condition(v1.PodReady, v1.ConditionFalse) }

// Running matches a container in state running.
func Running(container string) Matcher {
	return containerMatch(container+":running", container, func(s *v1.ContainerStatus) bool { return s.State.Running != nil })
}

// Waiting matches a container waiting with reason (any reason if "").
func Waiting(container, reason string) Matcher {
	return containerMatch(fmt.Sprintf("%s:waiting(%s)", container, orAny(reason)), container, func(s *v1.ContainerStatus) bool {
		return s.State.Waiting != nil && (reason == "" || s.State.Waiting.Reason == reason)
	})
}

// Terminated matches a container terminated with reason (any reason if "").
func Terminated(container, reason string) Matcher {
	return containerMatch(fmt.Sprintf("%s:terminated(%s)", container, orAny(reason)), container, func(s *v1.ContainerStatus) bool {
		return s.State.Terminated != nil && (reason == "" || s.State.Terminated.Reason == reason)
	})
}

// LastTerminated matches a container whose previous run (lastState) terminated with
// reason (any reason if ""): what a restarted container reports about why it restarted.
func LastTerminated(container, reason string) Matcher {
	return containerMatch(fmt.Sprintf("%s:last-terminated(%s)", container, orAny(reason)), container, func(s *v1.ContainerStatus) bool {
		return s.LastTerminationState.Terminated != nil && (reason == "" || s.LastTerminationState.Terminated.Reason == reason)
	})
}

// Restarts matches a container restarted at least n times.
func Restarts(container string, n int32) Matcher {
	return containerMatch(fmt.Sprintf("%s:restarts>=%d", container, n), container, func(s *v1.ContainerStatus) bool { return s.RestartCount >= n })
}

// ContainerReady matches a container's ready flag.
func ContainerReady(container string, ready bool) Matcher {
	return containerMatch(fmt.Sprintf("%s:ready=%t", container, ready), container, func(s *v1.ContainerStatus) bool { return s.Ready == ready })
}

// All matches when every one of ms matches the same status.
func All(ms ...Matcher) Matcher {
	var descs []string
	for _, m := range ms {
		descs = append(descs, m.String())
	}
	return Match(strings.Join(descs, " && "), func(p *v1.Pod) bool {
		for _, m := range ms {
			if !m.Match(p) {
				return false
			}
		}
		return true
	})
}

func containerMatch(desc, name string, f func(*v1.ContainerStatus) bool) Matcher {
	return Match(desc, func(p *v1.Pod) bool {
		s := containerStatus(p, name)
		return s != nil && f(s)
	})
}

func containerStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func orAny(reason string) string {
	if reason == "" {
		return "any"
	}
	return reason
}

// Summary is a one-line account of a pod's status: phase, conditions, and each
// container's state, readiness and restarts, e.g.
// "Running | Ready=False(ContainersNotReady) | app:waiting(CrashLoopBackOff) r2".
func Summary(p *v1.Pod) string {
	var b strings.Builder
	b.WriteString(string(p.Status.Phase))
	if p.Status.Reason != "" {
		fmt.Fprintf(&b, "(%s)", p.Status.Reason)
	}
	b.WriteString(" |")
	conds := append([]v1.PodCondition(nil), p.Status.Conditions...)
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	for _, c := range conds {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
		if c.Reason != "" {
			fmt.Fprintf(&b, "(%s)", c.Reason)
		}
	}
	b.WriteString(" |")
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			fmt.Fprintf(&b, " %s:%s", s.Name, stateString(s.State))
			if s.Ready {
				b.WriteString(" ready")
			}
			fmt.Fprintf(&b, " r%d", s.RestartCount)
		}
	}
	return b.String()
}

func stateString(s v1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting(" + s.Waiting.Reason + ")"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s,%d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "unknown"
}
