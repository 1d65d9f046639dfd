package main

import (
	"os"
	"testing"
)

func TestParseRSS(t *testing.T) {
	const status = "Name:\tminikubelet\nVmRSS:\t   67324 kB\nRssAnon:\t   13952 kB\nRssFile:\t   53372 kB\nRssShmem:\t       0 kB\n"
	r, err := parseRSS(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := (rss{total: 67324.0 / 1024, anon: 13952.0 / 1024, file: 53372.0 / 1024}); r != want {
		t.Errorf("parseRSS = %+v, want %+v", r, want)
	}
	for name, bad := range map[string]string{
		"no RssFile (a kernel before 4.5)": "VmRSS:\t1 kB\nRssAnon:\t1 kB\n",
		"not a number":                     "VmRSS:\tx kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\n",
		"empty":                            "",
	} {
		if _, err := parseRSS(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestImageMiB(t *testing.T) {
	n, err := imageMiB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary's code and read-only data: a few MiB, not its whole file with the
	// writable data or the debug sections.
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || n >= float64(fi.Size())/(1<<20) {
		t.Errorf("imageMiB = %.1f MiB for a %.1f MiB binary", n, float64(fi.Size())/(1<<20))
	}
}
