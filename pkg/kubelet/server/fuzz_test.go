package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseLogOptions: any query string gives options or a 400/422, never a panic, and
// accepted options are sane.
func FuzzParseLogOptions(f *testing.F) {
	for _, q := range []string{"", "follow=true&tailLines=10", "tail=all", "limitBytes=-1", "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
		"previous=1&timestamps=true", "stream=Stdout", "tailLines=9999999999999999999999", "follow=maybe"} {
		f.Add(q)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, _, herr := parseLogOptions(q, now)
		if herr != nil {
			if herr.code != http.StatusBadRequest && herr.code != http.StatusUnprocessableEntity {
				t.Fatalf("%q: status %d", raw, herr.code)
			}
			return
		}
		if o.tail < -1 || o.limit < 0 || o.since.After(now) {
			t.Fatalf("%q: accepted invalid options %+v", raw, o)
		}
		if o.stream != "" && o.stream != "stdout" && o.stream != "stderr" {
			t.Fatalf("%q: stream %q", raw, o.stream)
		}
	})
}

// FuzzRequestAttributes: every request maps to exactly one verb (or none for unknown
// methods) and at least one subresource; paths only prefix-like to a protected one never
// escape to a weaker subresource by a trailing trick.
func FuzzRequestAttributes(f *testing.F) {
	for _, p := range []string{"/pods", "/pods/", "/podsx", "/metrics/probes", "/stats/summary", "/containerLogs/a/b/c", "/exec/a/b/c", "/logs/../pods", "//metrics", ""} {
		f.Add("GET", p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		verb, subs := requestAttributes(method, path)
		if len(subs) == 0 {
			t.Fatalf("%s %q: no subresource", method, path)
		}
		known := map[string]string{"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
		if want, ok := known[method]; ok && verb != want || !ok && verb != "" {
			t.Fatalf("%s: verb %q", method, verb)
		}
		for _, s := range subs {
			switch s {
			case "pods", "healthz", "configz", "statusz", "stats", "metrics", "log", "checkpoint", "proxy":
			default:
				t.Fatalf("%s %q: unknown subresource %q", method, path, s)
			}
		}
	})
}

// FuzzNodeLogQuery: any query string parses to nil, a query, or errors (400), and a parsed
// query validates to errors (406) or to exactly one file or at most four safe services,
// never a panic; nothing validated names a path out of the log folder.
func FuzzNodeLogQuery(f *testing.F) {
	for _, q := range []string{"", "query=kubelet", "query=/a.log", "query=../x", "query=a&query=b&tailLines=5", "tailLines=-1",
		"boot=1", "sinceTime=2026-01-01T00:00:00Z&untilTime=2025-01-01T00:00:00Z", "pattern=(", "query=%0A", "query=/%2e%2e/x"} {
		f.Add(q)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		n, errs := parseNodeLogQuery(q)
		if n != nil && len(errs) > 0 {
			t.Fatalf("%q: both a query and errors", raw)
		}
		if n == nil {
			return
		}
		if errs := n.validate(dir); len(errs) > 0 {
			return
		}
		if len(n.Files) > 1 || len(n.Files) == 1 && len(n.Services) > 0 || len(n.Services) > maxServices {
			t.Fatalf("%q: accepted %+v", raw, n)
		}
		for _, s := range n.Services {
			if unsafeServiceChars.MatchString(s) || strings.HasPrefix(s, "-") && strings.ContainsAny(s, " =") {
				t.Fatalf("%q: unsafe service %q", raw, s)
			}
		}
		if n.TailLines != nil && (*n.TailLines < 0 || *n.TailLines > maxTailLines) || n.Boot != nil && *n.Boot > 0 {
			t.Fatalf("%q: accepted options %+v", raw, n.logQueryOptions)
		}
	})
}
