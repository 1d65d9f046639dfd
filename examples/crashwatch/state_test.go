package crashwatch

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestState(t *testing.T) {
	ready := []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	notReady := []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionFalse}}
	backOff := []v1.ContainerStatus{{Name: "a", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
	for _, c := range []struct {
		status v1.PodStatus
		want   string
	}{
		{v1.PodStatus{Phase: v1.PodPending}, Pending},
		{v1.PodStatus{Phase: v1.PodRunning, Conditions: ready}, Healthy},
		{v1.PodStatus{Phase: v1.PodRunning, Conditions: notReady}, NotReady},
		{v1.PodStatus{Phase: v1.PodRunning, Conditions: notReady, ContainerStatuses: backOff}, CrashLoopBackOff},
	} {
		if got := State(&v1.Pod{Status: c.status}); got != c.want {
			t.Errorf("State(%+v) = %q, want %q", c.status, got, c.want)
		}
	}
}
