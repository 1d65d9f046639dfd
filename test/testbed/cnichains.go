package testbed

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// The CNI portmap plugin keeps chains in the host's nat table that every bed on the
// machine shares (CNI-HOSTPORT-DNAT, -MASQ and -SETMARK, jumped to from PREROUTING,
// OUTPUT and POSTROUTING), beside one CNI-DN-* chain per pod with host ports that the
// runtime's CNI DEL removes with the pod. No DEL removes the shared ones: the last bed to
// stop does, with what a runtime that died left of the per-pod ones.
var cniChainPrefixes = []string{"CNI-HOSTPORT-", "CNI-DN-"}

func isCNIChain(name string) bool {
	return slices.ContainsFunc(cniChainPrefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// removeSharedCNIChains removes the portmap plugin's chains from the nat tables of
// iptables and ip6tables, and the rules that jump to them, when no runtime runs on the
// machine (a running one may still have pods with host ports, another bed's too).
func removeSharedCNIChains() error {
	if runtimeRunning() {
		return nil
	}
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		if err := removeCNIChains(func(args ...string) ([]byte, error) {
			return exec.Command(bin, append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
		}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", bin, err))
		}
	}
	return errors.Join(errs...)
}

// removeCNIChains removes, through nat (one iptables command on the nat table), every
// rule of a chain not CNI's own that jumps to a CNI chain, then the CNI chains.
func removeCNIChains(nat func(args ...string) ([]byte, error)) error {
	out, err := nat("-S")
	if err != nil {
		return fmt.Errorf("listing the nat table: %v: %s", err, out)
	}
	var chains []string
	jumps := map[string][]int{} // chain -> numbers (from 1) of its rules that jump to a CNI chain
	count := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "-N" && isCNIChain(f[1]):
			chains = append(chains, f[1])
		case len(f) > 1 && f[0] == "-A":
			count[f[1]]++
			if isCNIChain(f[1]) {
				continue
			}
			if i := slices.Index(f, "-j"); i > 0 && i+1 < len(f) && isCNIChain(f[i+1]) {
				jumps[f[1]] = append(jumps[f[1]], count[f[1]])
			}
		}
	}
	var errs []string
	for chain, nums := range jumps {
		for _, n := range slices.Backward(nums) { // the last first: numbers before it stay
			if out, err := nat("-D", chain, strconv.Itoa(n)); err != nil {
				errs = append(errs, fmt.Sprintf("-D %s %d: %v: %s", chain, n, err, out))
			}
		}
	}
	// Flushed all before any is deleted: they jump to each other.
	for _, op := range []string{"-F", "-X"} {
		for _, c := range chains {
			if out, err := nat(op, c); err != nil {
				errs = append(errs, fmt.Sprintf("%s %s: %v: %s", op, c, err, out))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing CNI chains: %s", strings.Join(errs, "; "))
	}
	return nil
}
