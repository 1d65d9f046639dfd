package dns

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Upstream's parseResolvConf cases (options there compared as sets; here in the order
// minikubelet keeps).
func TestParseResolvConf(t *testing.T) {
	for _, tc := range []struct {
		in                        string
		servers, searches, optons []string
		err                       bool
	}{
		{in: ""},
		{in: " \n\t\n"},
		{in: "#comment\n #comment\n"},
		{in: "#comment\nnameserver", err: true},
		{in: "#comment\nnameserver 1.2.3.4\nsearch", servers: []string{"1.2.3.4"}},
		{in: "\tnameserver \t 1.2.3.4 #comment", servers: []string{"1.2.3.4"}},
		{in: "nameserver 1.2.3.4\nnameserver 5.6.7.8", servers: []string{"1.2.3.4", "5.6.7.8"}},
		{in: "search .", searches: nil},
		{in: "search . foo", searches: []string{"foo"}},
		{in: "search foo .  bar", searches: []string{"foo", "bar"}},
		{in: "search foo. bar", searches: []string{"foo", "bar"}},
		{in: "search foo\nsearch bar", searches: []string{"bar"}},
		{in: "nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar", servers: []string{"1.2.3.4", "5.6.7.8"}, searches: []string{"bar"}},
		{in: "options ndots:1 ndots:5 attempts:2", optons: []string{"ndots:5", "attempts:2"}},
		{in: "options ndots:1 edns0 attempts:2 single-request-reopen", optons: []string{"ndots:1", "edns0", "attempts:2", "single-request-reopen"}},
		{in: "options ndots:1 timeout:3 timeout:1 attempts:3\noptions ndots:5", optons: []string{"ndots:5", "timeout:1", "attempts:3"}},
		{in: "; a comment\ndomain x\nsortlist 1.2.3.4", servers: nil},
	} {
		r, err := ParseResolvConf(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if !reflect.DeepEqual(r, Resolver{tc.servers, tc.searches, tc.optons}) {
			t.Errorf("%q: got %q", tc.in, r)
		}
	}
}

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	if r, err := ReadResolvConf(""); err != nil || !reflect.DeepEqual(r, Resolver{}) {
		t.Errorf(`ReadResolvConf("") = %v, %v`, r, err)
	}
	if _, err := ReadResolvConf(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("nameserver\n"), 0o644)
	if _, err := ReadResolvConf(bad); err == nil || err.Error() != "Encountered error while parsing resolv conf file. Error: nameserver list is empty " {
		t.Errorf("bad file: %v", err)
	}
}

func TestCheckResolvConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	paths := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, strings.Repeat("a", i+1))
		}
		return "search " + strings.Join(s, " ") + "\n"
	}
	ok := write("ok", "nameserver 1.2.3.4\n"+paths(29))
	if ev := CheckResolvConf(ok, "k8s.test"); ev != nil {
		t.Errorf("29 paths with a cluster domain: %+v", ev)
	}
	for _, tc := range []struct{ path, domain, want string }{
		{write("thirty", paths(30)), "k8s.test", "Resolv.conf file '" + dir + "/thirty' contains search line consisting of more than 29 domains!"},
		{write("thirty3", paths(33)), "", "Resolv.conf file '" + dir + "/thirty3' contains search line consisting of more than 32 domains!"},
		{write("long", "search "+strings.Repeat("b", 254)+"\n"), "", `Resolv.conf file "` + dir + `/long" contains a search path which length is more than allowed 253 chars!`},
		{write("line", "search "+strings.Repeat(strings.Repeat("c", 200)+" ", 11)+"\n"), "", "Resolv.conf file '" + dir + "/line' contains search line which length is more than allowed 2048 chars!"},
		{dir + "/none", "", "open " + dir + "/none: no such file or directory"},
		{write("bad", "nameserver\n"), "", "nameserver list is empty "},
	} {
		ev := CheckResolvConf(tc.path, tc.domain)
		if ev == nil || *ev != (Event{OnNode: true, Reason: "CheckLimitsForResolvConf", Message: tc.want}) {
			t.Errorf("%s: %+v, want %q", tc.path, ev, tc.want)
		}
	}
}
