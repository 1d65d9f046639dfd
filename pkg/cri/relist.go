package cri

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Relist lists this node's sandboxes and containers every interval, and at once whenever
// now receives (runtime events arrive there), and calls changed with
// the UID of every pod whose runtime objects appeared, disappeared or changed state, and
// seen with every pod present (UID -> namespace/name from the labels). It returns when
// ctx ends.
func (c *Client) Relist(ctx context.Context, node string, interval time.Duration, now <-chan struct{}, changed func(types.UID), seen func(map[types.UID][2]string)) {
	prev := map[string]string{} // object id -> state
	owner := map[string]types.UID{}
	sel := map[string]string{LabelNode: node}
	t := time.NewTicker(interval)
	defer t.Stop()
	// An event reaches us and containerd's CRI plugin at the same moment, and CRI updates
	// its own state a little later; so an event starts a short burst of relists.
	burst := []time.Duration{25 * time.Millisecond, 75 * time.Millisecond, 200 * time.Millisecond, 700 * time.Millisecond}
	step := len(burst)
	follow := time.NewTimer(time.Hour)
	defer follow.Stop()
	for {
		cur := map[string]string{}
		uids := map[types.UID][2]string{}
		ok := true
		sbs, err := call(ctx, c, "list_podsandbox", c.runtime.ListPodSandbox, &runtimeapi.ListPodSandboxRequest{
			Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
		if err != nil {
			ok = false
		} else {
			for _, s := range sbs.Items {
				uid := types.UID(s.Labels[LabelPodUID])
				cur["s/"+s.Id], owner["s/"+s.Id] = s.State.String(), uid
				uids[uid] = [2]string{s.Labels[LabelPodNamespace], s.Labels[LabelPodName]}
			}
		}
		cts, err := call(ctx, c, "list_containers", c.runtime.ListContainers, &runtimeapi.ListContainersRequest{
			Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
		if err != nil {
			ok = false
		} else {
			for _, ct := range cts.Containers {
				uid := types.UID(ct.Labels[LabelPodUID])
				cur["c/"+ct.Id], owner["c/"+ct.Id] = ct.State.String(), uid
				if _, ok := uids[uid]; !ok {
					uids[uid] = [2]string{ct.Labels[LabelPodNamespace], ct.Labels[LabelPodName]}
				}
			}
		}
		if ok {
			notified := map[types.UID]bool{}
			notify := func(id string) {
				if uid := owner[id]; !notified[uid] {
					notified[uid] = true
					changed(uid)
				}
			}
			for id, st := range cur {
				if prev[id] != st {
					notify(id)
					if st == runtimeapi.ContainerState_CONTAINER_EXITED.String() && prev[id] == runtimeapi.ContainerState_CONTAINER_RUNNING.String() {
						c.observeExitSeen(ctx, id[len("c/"):])
					}
				}
			}
			for id := range prev {
				if _, ok := cur[id]; !ok {
					notify(id)
					delete(owner, id)
				}
			}
			prev = cur
			if seen != nil {
				seen(uids)
			}
		} else {
			klog.FromContext(ctx).V(4).Info("Relist failed", "err", err)
		}
		if step < len(burst) {
			follow.Reset(burst[step])
			step++
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-follow.C:
		case <-now:
			step = 0
		}
	}
}

// observeExitSeen records how long after a container's exit its pod's worker was woken.
func (c *Client) observeExitSeen(ctx context.Context, id string) {
	now := time.Now()
	st, err := call(ctx, c, "container_status", c.runtime.ContainerStatus, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil || st.GetStatus().GetFinishedAt() == 0 {
		return
	}
	exitSeen.Observe(now.Sub(time.Unix(0, st.GetStatus().GetFinishedAt())).Seconds())
}
