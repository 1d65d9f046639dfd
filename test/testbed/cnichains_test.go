package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The portmap plugin's shared chains, a per-pod chain a dead runtime left, and the jumps
// to them go; the table's other chains and rules stay. In a network namespace of the
// test's own, so the machine's tables are not touched.
func TestRemoveCNIChains(t *testing.T) {
	ns := fmt.Sprintf("mk-cnitest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	nat := func(args ...string) ([]byte, error) {
		return exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-w", "-t", "nat"}, args...)...).CombinedOutput()
	}
	for _, r := range [][]string{
		{"-N", "CNI-HOSTPORT-DNAT"}, {"-N", "CNI-HOSTPORT-MASQ"}, {"-N", "CNI-HOSTPORT-SETMARK"},
		{"-N", "CNI-DN-0123456789abcdef"}, {"-N", "OTHER-CHAIN"},
		{"-A", "PREROUTING", "-j", "OTHER-CHAIN"},
		{"-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"-A", "OUTPUT", "-d", "192.0.2.1/32", "-j", "RETURN"},
		{"-A", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"},
		{"-A", "CNI-HOSTPORT-MASQ", "-m", "mark", "--mark", "0x2000/0x2000", "-j", "MASQUERADE"},
		{"-A", "CNI-HOSTPORT-SETMARK", "-j", "MARK", "--set-xmark", "0x2000/0x2000"},
		{"-A", "CNI-HOSTPORT-DNAT", "-p", "tcp", "-m", "multiport", "--dports", "8080", "-j", "CNI-DN-0123456789abcdef"},
		{"-A", "CNI-DN-0123456789abcdef", "-p", "tcp", "--dport", "8080", "-j", "CNI-HOSTPORT-SETMARK"},
		{"-A", "OTHER-CHAIN", "-d", "192.0.2.2/32", "-j", "RETURN"},
	} {
		if out, err := nat(r...); err != nil {
			t.Fatalf("iptables %v: %v: %s", r, err, out)
		}
	}
	if err := removeCNIChains(nat); err != nil {
		t.Fatal(err)
	}
	out, err := nat("-S")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := string(out)
	if strings.Contains(got, "CNI-") {
		t.Errorf("CNI chains or jumps left:\n%s", got)
	}
	for _, keep := range []string{"-N OTHER-CHAIN", "-A PREROUTING -j OTHER-CHAIN", "-A OUTPUT -d 192.0.2.1/32 -j RETURN", "-A OTHER-CHAIN -d 192.0.2.2/32 -j RETURN"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q removed too:\n%s", keep, got)
		}
	}
	// Nothing of CNI's left: nothing to do, no error.
	if err := removeCNIChains(nat); err != nil {
		t.Errorf("second pass: %v", err)
	}
}
