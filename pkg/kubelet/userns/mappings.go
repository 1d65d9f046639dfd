package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// kubeletUser is the user whose subordinate IDs the kubelet owns (upstream's kubeletUser).
const kubeletUser = "kubelet"

// KubeletMappings is the kubelet's ID range, as upstream's getKubeletMappings
// (kubelet_pods.go): with a "kubelet" user, its one subordinate range, the same for users
// and groups, from the getsubids tool (as upstream) or, without the tool, from
// /etc/subuid and /etc/subgid (upstream then fails to start); without that user, every
// ID from idsPerPod up, so host IDs below idsPerPod (root's) are never mapped into a pod.
func KubeletMappings(idsPerPod uint32) (first, length uint32, err error) {
	return kubeletMappings(idsPerPod, subIDSources{
		lookupUser: user.Lookup, lookPath: exec.LookPath, readFile: os.ReadFile,
		run: func(path string, args ...string) ([]byte, error) { return exec.Command(path, args...).Output() },
	})
}

// subIDSources are where KubeletMappings looks (the system's, or a test's).
type subIDSources struct {
	lookupUser func(string) (*user.User, error)
	lookPath   func(string) (string, error)
	run        func(string, ...string) ([]byte, error)
	readFile   func(string) ([]byte, error)
}

func kubeletMappings(idsPerPod uint32, src subIDSources) (uint32, uint32, error) {
	defFirst, defLen := idsPerPod, uint32((1<<32)-uint64(idsPerPod))
	if _, err := src.lookupUser(kubeletUser); err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return defFirst, defLen, nil
		}
		return 0, 0, err
	}
	// The user exists: a range must be configured for it. Nothing found is an error (a
	// remote source of getsubids may be down), never a silent fallback.
	cmd, err := src.lookPath("getsubids")
	if errors.Is(err, exec.ErrNotFound) {
		return subIDFiles(src.readFile)
	}
	if err != nil {
		return 0, 0, err
	}
	uids, err := src.run(cmd, kubeletUser)
	if err != nil {
		return 0, 0, fmt.Errorf("error retrieving additional uids for user %q: %w", kubeletUser, err)
	}
	gids, err := src.run(cmd, "-g", kubeletUser)
	if err != nil {
		return 0, 0, fmt.Errorf("error retrieving additional gids for user %q", kubeletUser)
	}
	if string(uids) != string(gids) {
		return 0, 0, fmt.Errorf("mismatched subuids and subgids for user %q", kubeletUser)
	}
	return parseSubIDs(string(uids))
}

// subIDFiles reads the kubelet user's range from /etc/subuid and /etc/subgid, as
// getsubids does with its default (files) source.
func subIDFiles(readFile func(string) ([]byte, error)) (uint32, uint32, error) {
	var ranges [2]string
	for i, path := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := readFile(path)
		if err != nil {
			return 0, 0, fmt.Errorf("subordinate IDs of user %q: %w", kubeletUser, err)
		}
		var found []string
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(strings.TrimSpace(line), ":")
			if len(f) == 3 && f[0] == kubeletUser {
				found = append(found, fmt.Sprintf("%d: %s %s %s", len(found), kubeletUser, f[1], f[2]))
			}
		}
		if len(found) == 0 {
			return 0, 0, fmt.Errorf("no subordinate IDs for user %q in %s", kubeletUser, path)
		}
		ranges[i] = strings.Join(found, "\n")
	}
	if ranges[0] != ranges[1] {
		return 0, 0, fmt.Errorf("mismatched subuids and subgids for user %q", kubeletUser)
	}
	return parseSubIDs(ranges[0])
}

// parseSubIDs reads getsubids' answer, one range: "0: kubelet 65536 2147483648".
func parseSubIDs(out string) (first, length uint32, err error) {
	lines := strings.Split(strings.Trim(out, "\n"), "\n")
	if len(lines) != 1 {
		return 0, 0, fmt.Errorf("error parsing line %q: it must contain only one line", out)
	}
	parts := strings.Fields(lines[0])
	if len(parts) != 4 {
		return 0, 0, fmt.Errorf("invalid line %q", out)
	}
	f, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("error parsing line %q: %w", out, err)
	}
	l, err := strconv.ParseUint(parts[3], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("error parsing line %q: %w", out, err)
	}
	return uint32(f), uint32(l), nil
}
