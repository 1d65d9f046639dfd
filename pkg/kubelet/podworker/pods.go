package podworker

import (
	v1 "k8s.io/api/core/v1"
)

// Pods returns the pods the workers currently own (the newest spec of each; pods gone from
// the API are included until their worker has finished with them), as the kubelet API's
// /pods lists them. The pods are shared: callers must not modify them.
func (w *Workers) Pods() []*v1.Pod {
	w.mu.Lock()
	wks := make([]*worker, 0, len(w.pods))
	for _, wk := range w.pods {
		wks = append(wks, wk)
	}
	w.mu.Unlock()
	out := make([]*v1.Pod, 0, len(wks))
	for _, wk := range wks {
		wk.mu.Lock()
		if wk.pod != nil {
			out = append(out, wk.pod)
		}
		wk.mu.Unlock()
	}
	return out
}
