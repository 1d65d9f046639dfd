package userns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers HandlerSupportsUserNamespaces from a table.
type fakeRuntime map[string]bool

func (f fakeRuntime) HandlerSupportsUserNamespaces(_ context.Context, h string) (bool, error) {
	if len(f) == 0 {
		return false, nil
	}
	ok, known := f[h]
	if !known {
		return false, fmt.Errorf("the handler %q is not known", h)
	}
	return ok, nil
}

func pod(uid string, hostUsers *bool) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: uid, Namespace: "ns"},
		Spec: v1.PodSpec{HostUsers: hostUsers}}
}

// newManager is a manager over a small range: blocks 1..n of 65536 IDs.
func newManager(t *testing.T, dir string, n int, rt Runtime) *Manager {
	t.Helper()
	m, err := New(context.Background(), Config{PodsDir: dir, MaxPods: n, Runtime: rt,
		Mappings: func(ids uint32) (uint32, uint32, error) { return ids, uint32(n) * ids, nil },
		Rand:     func(int) int { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPodNamespace(t *testing.T) {
	yes, no := true, false
	v2 := fakeRuntime{"": true, "runc": true, "kata": false}
	for _, tc := range []struct {
		name      string
		rt        Runtime
		hostUsers *bool
		handler   string
		wantMode  runtimeapi.NamespaceMode
		wantErr   string
	}{
		{name: "hostUsers unset", rt: fakeRuntime{}, wantMode: runtimeapi.NamespaceMode_NODE},
		{name: "hostUsers true", rt: fakeRuntime{}, hostUsers: &yes, wantMode: runtimeapi.NamespaceMode_NODE},
		{name: "false, runtime supports it", rt: v2, hostUsers: &no, wantMode: runtimeapi.NamespaceMode_POD},
		{name: "false, handler supports it", rt: v2, hostUsers: &no, handler: "runc", wantMode: runtimeapi.NamespaceMode_POD},
		{name: "false, containerd 1.6 (no handlers)", rt: fakeRuntime{}, hostUsers: &no,
			wantErr: "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
		{name: "false, handler without support", rt: v2, hostUsers: &no, handler: "kata",
			wantErr: "can't set `spec.hostUsers: false`, RuntimeClass handler \"kata\" does not support user namespaces"},
		{name: "false, unknown handler", rt: v2, hostUsers: &no, handler: "gvisor",
			wantErr: "can't set `spec.hostUsers: false`, RuntimeClass handler \"gvisor\" does not support user namespaces: the handler \"gvisor\" is not known"},
		{name: "false, no manager", hostUsers: &no,
			wantErr: "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var m *Manager
			if tc.rt != nil {
				m = newManager(t, dir, 4, tc.rt)
			}
			got, err := m.PodNamespace(context.Background(), pod("u1", tc.hostUsers), tc.handler)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || got != nil {
					t.Fatalf("got %v, %v; want error %q", got, err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(dir, "u1", "userns")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused pod got a mappings file: %v", err)
				}
				return
			}
			if err != nil || got.Mode != tc.wantMode {
				t.Fatalf("got %v, %v; want mode %v", got, err, tc.wantMode)
			}
			if tc.wantMode == runtimeapi.NamespaceMode_NODE && (got.Uids != nil || got.Gids != nil) {
				t.Errorf("NODE mode with mappings: %v", got)
			}
			if tc.wantMode == runtimeapi.NamespaceMode_POD {
				for _, ms := range [][]*runtimeapi.IDMapping{got.Uids, got.Gids} {
					if len(ms) != 1 || ms[0].HostId != 65536 || ms[0].ContainerId != 0 || ms[0].Length != 65536 {
						t.Errorf("mappings %v, want host 65536 -> 0, 65536 IDs", ms)
					}
				}
			}
		})
	}
}

// Blocks are handed out once each, kept across calls and restarts (the pod's file), and
// freed by Release; a full range refuses more pods.
func TestAllocationAndPersistence(t *testing.T) {
	no := false
	dir := t.TempDir()
	ctx := context.Background()
	m := newManager(t, dir, 3, fakeRuntime{"": true})
	first := func(m *Manager, uid string) (uint32, error) {
		ns, err := m.PodNamespace(ctx, pod(uid, &no), "")
		if err != nil {
			return 0, err
		}
		if ns.Uids[0].ContainerId != 0 || ns.Uids[0].Length != 65536 || ns.Gids[0].HostId != ns.Uids[0].HostId {
			t.Errorf("%s: mapping %v", uid, ns)
		}
		return ns.Uids[0].HostId, nil
	}
	for _, step := range []struct {
		uid  string
		want uint32
	}{{"a", 65536}, {"b", 2 * 65536}, {"a", 65536}, {"c", 3 * 65536}} {
		if got, err := first(m, step.uid); err != nil || got != step.want {
			t.Fatalf("pod %s: %d, %v; want %d", step.uid, got, err, step.want)
		}
	}
	if _, err := first(m, "d"); err == nil || !strings.Contains(err.Error(), "could not find an empty slot") {
		t.Fatalf("full range: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "b", "userns"))
	if want := `{"uidMappings":[{"hostId":131072,"containerId":0,"length":65536}],"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}`; err != nil || string(data) != want {
		t.Errorf("file %s, %v; want upstream's %s", data, err, want)
	}

	// A restart reads the files back: the same blocks, and no block given twice.
	m2 := newManager(t, dir, 3, fakeRuntime{"": true})
	if got, err := first(m2, "b"); err != nil || got != 2*65536 {
		t.Errorf("after restart b: %d, %v", got, err)
	}
	if _, err := first(m2, "d"); err == nil {
		t.Error("after restart the range should still be full")
	}
	m2.Release(ctx, "b")
	if _, err := os.Stat(filepath.Join(dir, "b", "userns")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("released pod's file: %v", err)
	}
	if got, err := first(m2, "d"); err != nil || got != 2*65536 {
		t.Errorf("d after release: %d, %v; want b's freed block", got, err)
	}
	m2.Release(ctx, "unknown") // no-op
	var nilManager *Manager
	nilManager.Release(ctx, "a")
}

// New refuses files it did not produce or that clash, as upstream (no start with a block
// that may be given twice).
func TestNewRejectsBadFiles(t *testing.T) {
	mapping := func(host, ctr, length uint32) string {
		return fmt.Sprintf(`{"hostId":%d,"containerId":%d,"length":%d}`, host, ctr, length)
	}
	file := func(u, g string) string { return `{"uidMappings":[` + u + `],"gidMappings":[` + g + `]}` }
	ok := file(mapping(65536, 0, 65536), mapping(65536, 0, 65536))
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{name: "good files and a pod without one", files: map[string]string{"a": ok, "b": file(mapping(131072, 0, 65536), mapping(131072, 0, 65536)), "c": ""}},
		{name: "not JSON", files: map[string]string{"a": "{"}, wantErr: "invalid user namespace mappings file"},
		{name: "two mappings", files: map[string]string{"a": file(mapping(65536, 0, 65536)+","+mapping(131072, 0, 65536), mapping(65536, 0, 65536))}, wantErr: "no more than one mapping"},
		{name: "uid and gid differ", files: map[string]string{"a": file(mapping(65536, 0, 65536), mapping(131072, 0, 65536))}, wantErr: "should be identical"},
		{name: "root not mapped", files: map[string]string{"a": file(mapping(65536, 1, 65536), mapping(65536, 1, 65536))}, wantErr: "UID 0 must be mapped"},
		{name: "wrong length", files: map[string]string{"a": file(mapping(65536, 0, 1000), mapping(65536, 0, 1000))}, wantErr: "wrong user namespace length"},
		{name: "unaligned", files: map[string]string{"a": file(mapping(65537, 0, 65536), mapping(65537, 0, 65536))}, wantErr: "wrong user namespace offset"},
		{name: "host root", files: map[string]string{"a": file(mapping(0, 0, 65536), mapping(0, 0, 65536))}, wantErr: "out of range"},
		{name: "same block twice", files: map[string]string{"a": ok, "b": ok}, wantErr: "already taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for uid, content := range tc.files {
				if err := os.MkdirAll(filepath.Join(dir, uid), 0o750); err != nil {
					t.Fatal(err)
				}
				if content != "" {
					if err := os.WriteFile(filepath.Join(dir, uid, "userns"), []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := New(context.Background(), Config{PodsDir: dir, MaxPods: 3, Runtime: fakeRuntime{},
				Mappings: func(ids uint32) (uint32, uint32, error) { return ids, 3 * ids, nil }})
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("New: %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := New(context.Background(), Config{PodsDir: filepath.Join(t.TempDir(), "none"), MaxPods: 110}); err != nil {
		t.Errorf("no pods dir yet: %v", err)
	}
}

func TestBlocks(t *testing.T) {
	const u = 65536
	for _, tc := range []struct {
		name               string
		first, length, ids uint32
		maxPods, off, n    int
		wantErr            string
	}{
		{name: "upstream default", first: u, length: 1<<32 - u, ids: u, maxPods: 110, off: 1, n: u - 1},
		{name: "subordinate range", first: 2 * u, length: 110 * u, ids: u, maxPods: 110, off: 2, n: 110},
		{name: "bigger blocks", first: 2 * u, length: 8 * u, ids: 2 * u, maxPods: 4, off: 1, n: 4},
		{name: "ids not a unit multiple", first: u, length: 4 * u, ids: u + 1, wantErr: "is not a multiple of 65536"},
		{name: "first unaligned", first: u + 5, length: 4 * u, ids: u, wantErr: "kubelet user assigned ID 65541 is not a multiple of 65536"},
		{name: "maps root", first: 0, length: 4 * u, ids: u, wantErr: "must be greater or equal to 65536"},
		{name: "length unaligned", first: u, length: 4*u + 1, ids: u, wantErr: "IDs length 262145 is not a multiple of 65536"},
		{name: "too few for maxPods", first: u, length: 4 * u, ids: u, maxPods: 5, wantErr: "not enough to support 5 pods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, n, err := blocks(tc.first, tc.length, tc.ids, tc.maxPods)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || off != tc.off || n != tc.n {
				t.Errorf("got %d, %d, %v; want %d, %d", off, n, err, tc.off, tc.n)
			}
		})
	}
}

func TestKubeletMappings(t *testing.T) {
	noUser := func(string) (*user.User, error) { return nil, user.UnknownUserError("kubelet") }
	hasUser := func(string) (*user.User, error) { return &user.User{Username: "kubelet"}, nil }
	noTool := func(string) (string, error) { return "", &exec.Error{Name: "getsubids", Err: exec.ErrNotFound} }
	tool := func(string) (string, error) { return "/usr/bin/getsubids", nil }
	answer := func(uids, gids string) func(string, ...string) ([]byte, error) {
		return func(_ string, args ...string) ([]byte, error) {
			if args[0] == "-g" {
				return []byte(gids), nil
			}
			return []byte(uids), nil
		}
	}
	files := func(subuid, subgid string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p == "/etc/subuid" {
				return []byte(subuid), nil
			}
			return []byte(subgid), nil
		}
	}
	line := "0: kubelet 65536 2147483648\n"
	for _, tc := range []struct {
		name          string
		src           subIDSources
		first, length uint32
		wantErr       string
	}{
		{name: "no kubelet user: upstream's default", src: subIDSources{lookupUser: noUser}, first: 65536, length: 1<<32 - 65536},
		{name: "getsubids", src: subIDSources{lookupUser: hasUser, lookPath: tool, run: answer(line, line)}, first: 65536, length: 1 << 31},
		{name: "getsubids mismatch", src: subIDSources{lookupUser: hasUser, lookPath: tool, run: answer(line, "0: kubelet 0 65536\n")}, wantErr: "mismatched subuids and subgids"},
		{name: "getsubids two ranges", src: subIDSources{lookupUser: hasUser, lookPath: tool, run: answer(line+line, line+line)}, wantErr: "it must contain only one line"},
		{name: "getsubids garbage", src: subIDSources{lookupUser: hasUser, lookPath: tool, run: answer("kubelet\n", "kubelet\n")}, wantErr: "invalid line"},
		{name: "files", src: subIDSources{lookupUser: hasUser, lookPath: noTool,
			readFile: files("root:100000:65536\nkubelet:65536:2147483648\n", "kubelet:65536:2147483648\n")}, first: 65536, length: 1 << 31},
		{name: "files without the user", src: subIDSources{lookupUser: hasUser, lookPath: noTool,
			readFile: files("root:100000:65536\n", "")}, wantErr: `no subordinate IDs for user "kubelet" in /etc/subuid`},
		{name: "files differ", src: subIDSources{lookupUser: hasUser, lookPath: noTool,
			readFile: files("kubelet:65536:65536\n", "kubelet:131072:65536\n")}, wantErr: "mismatched"},
		{name: "lookup fails", src: subIDSources{lookupUser: func(string) (*user.User, error) { return nil, errors.New("nss down") }}, wantErr: "nss down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, length, err := kubeletMappings(65536, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || first != tc.first || length != tc.length {
				t.Errorf("got %d, %d, %v; want %d, %d", first, length, err, tc.first, tc.length)
			}
		})
	}
}
