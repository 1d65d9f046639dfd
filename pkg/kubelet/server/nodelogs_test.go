package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Upstream's messages (field.ErrorList aggregated) for malformed parameters: 400.
func TestParseNodeLogQueryErrors(t *testing.T) {
	for raw, want := range map[string]string{
		"query=":                    `query: Invalid value: [""]: may not be empty`,
		"query=+++&query=+":         `query: Invalid value: ["   "," "]: may not be empty`,
		"query=a&sinceTime=2019-12": `sinceTime: Invalid value: "2019-12": invalid time format`,
		"untilTime=yesterday":       `untilTime: Invalid value: "yesterday": invalid time format`,
		"tailLines=foo":             `tailLines: Invalid value: "foo": strconv.Atoi: parsing "foo": invalid syntax`,
		"boot=x&tailLines=1":        `boot: Invalid value: "x": strconv.Atoi: parsing "x": invalid syntax`,
		"query=&boot=x":             `[query: Invalid value: [""]: may not be empty, boot: Invalid value: "x": strconv.Atoi: parsing "x": invalid syntax]`,
	} {
		q, _ := url.ParseQuery(raw)
		n, errs := parseNodeLogQuery(q)
		if n != nil || errs.ToAggregate() == nil || errs.ToAggregate().Error() != want {
			t.Errorf("%s: %v, %v; want %s", raw, n, errs.ToAggregate(), want)
		}
	}
	for raw, want := range map[string]*nodeLogQuery{
		"":              nil,
		"pattern=":      nil,
		"other=1":       nil,
		"query=kubelet": {Services: []string{"kubelet"}},
		"query=a/b.log": {Files: []string{"a/b.log"}},
	} {
		q, _ := url.ParseQuery(raw)
		n, errs := parseNodeLogQuery(q)
		if len(errs) > 0 || (n == nil) != (want == nil) || n != nil && (strings.Join(n.Services, ",") != strings.Join(want.Services, ",") || strings.Join(n.Files, ",") != strings.Join(want.Files, ",")) {
			t.Errorf("%s: %+v %v", raw, n, errs)
		}
	}
}

// logDir is a log folder with a file, a service's folder, and links in and out of it.
func logDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	for name, body := range map[string]string{"a.log": "one\ntwo\nthree\n", "svc.log": "svc line\n", "deep/deep.log": "deep\n", outside: "secret\n"} {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "out.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.log", filepath.Join(dir, "in.log")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNodeLogsQuery(t *testing.T) {
	dir := logDir(t)
	k := testKubeletConfig(t)
	k.EnableSystemLogQuery = ptr(true)
	h := newNodeServer(t, k, &fakeRuntime{}, dir)
	for _, tc := range []struct {
		path string
		code int
		body string // the whole answer, or with a leading "~" a part of it
	}{
		{"/logs/a.log", 200, "one\ntwo\nthree\n"},
		{"/logs/in.log", 200, "one\ntwo\nthree\n"},
		{"/logs/", 200, `~<a href="a.log">a.log</a>`},
		{"/logs/out.log", 403, "~Forbidden"},
		{"/logs/nope.log", 404, "~not found"},
		{"/logs/?query=./a.log", 200, "one\ntwo\nthree\n"},
		// As upstream's os.Root check: an absolute path leads out of the folder.
		{"/logs/?query=/a.log", 406, `query: Invalid value: ["/a.log"]: statat /a.log: path escapes from parent`},
		{"/logs/?query=deep/deep.log", 200, "deep\n"},
		{"/logs/?query=svc", 200, "svc line\n"},
		{"/logs/?query=deep", 200, "deep\n"},
		{"/logs/?query=missing", 200, "\nlog not found for missing\n"},
		{"/logs/?query=svc&tailLines=1", 200, "\noptions present and query resolved to log files for [svc]\ntry without specifying options\n"},
		{"/logs/?tailLines=abc", 400, `tailLines: Invalid value: "abc": strconv.Atoi: parsing "abc": invalid syntax`},
		{"/logs/?query=", 400, `query: Invalid value: [""]: may not be empty`},
		{"/logs/a.log?query=svc", 406, "path not allowed in query mode"},
		{"/logs/?tailLines=1", 406, "query: Required value: cannot be empty with options"},
		{"/logs/?query=svc&tailLines=100001", 406, "tailLines: Invalid value: 100001: must be between 0 and 100000, inclusive"},
		{"/logs/?query=svc&boot=1", 406, "boot: Invalid value: 1: must be less than 1"},
		{"/logs/?query=svc&pattern=(", 406, "pattern: Invalid value: \"(\": error parsing regexp: missing closing ): `(`"},
		{"/logs/?query=svc&sinceTime=2026-01-02T00:00:00Z&untilTime=2026-01-01T00:00:00Z", 406, "~untilTime: Invalid value: \"2026-01-01T00:00:00Z\": must be after `sinceTime`"},
		{"/logs/?query=a.log/&query=svc", 406, "~cannot specify a file and service"},
		{"/logs/?query=./a.log&query=./in.log", 406, "~cannot specify more than one file"},
		{"/logs/?query=/a.log&pattern=one", 406, `query: Invalid value: ["/a.log"]: cannot specify file with options`},
		{"/logs/?query=../etc/passwd", 406, "~path escapes from parent"},
		{"/logs/?query=./out.log", 406, "~path escapes from parent"},
		{"/logs/?query=./nope.log", 406, "~no such file or directory"},
		{"/logs/?query=a%0Ab", 406, `query: Invalid value: "a\nb": input contains unsupported characters`},
		{"/logs/?query=a&query=b&query=c&query=d&query=e", 406, "query: Too many: 5: must have at most 4 items"},
	} {
		w := do(t, h, "GET", tc.path, "")
		got := w.Body.String()
		ok := got == tc.body
		if part, found := strings.CutPrefix(tc.body, "~"); found {
			ok = strings.Contains(got, part)
		}
		if w.Code != tc.code || !ok {
			t.Errorf("%s: %d %q, want %d %q", tc.path, w.Code, got, tc.code, tc.body)
		}
	}
	if w := do(t, h, "POST", "/logs/a.log", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
}

// Without enableSystemLogQuery the query is ignored (upstream serves the folder); with
// enableSystemLogHandler false, /logs/ answers 405.
func TestNodeLogsModes(t *testing.T) {
	dir := logDir(t)
	h := newNodeServer(t, testKubeletConfig(t), &fakeRuntime{}, dir)
	if w := do(t, h, "GET", "/logs/?query=svc&tailLines=x", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `href="svc.log"`) {
		t.Errorf("query off: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/logs/a.log", ""); w.Code != 200 || w.Body.String() != "one\ntwo\nthree\n" {
		t.Errorf("query off, file: %d %s", w.Code, w.Body)
	}
	k := testKubeletConfig(t)
	k.EnableSystemLogHandler = ptr(false)
	h = newNodeServer(t, k, &fakeRuntime{}, dir)
	if w := do(t, h, "GET", "/logs/a.log", ""); w.Code != http.StatusMethodNotAllowed || w.Body.String() != "logs endpoint is disabled." {
		t.Errorf("handler off: %d %s", w.Code, w.Body)
	}
}

// A service's log comes gzipped when asked for.
func TestNodeLogsGzip(t *testing.T) {
	k := testKubeletConfig(t)
	k.EnableSystemLogQuery = ptr(true)
	h := newNodeServer(t, k, &fakeRuntime{}, logDir(t))
	r, _ := http.NewRequest("GET", "/logs/?query=svc", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := doRequest(h, r)
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", w.Header())
	}
	zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); string(b) != "svc line\n" {
		t.Errorf("body %q", b)
	}
}

// A journal that knows the service is read with upstream's journalctl arguments.
func TestNodeLogsJournal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "journalctl")
	script := "#!/bin/sh\nif [ \"$1\" = --field ]; then echo kubelet.service; exit 0; fi\necho \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := newNodeLogs(logDir(t), true)
	n.journalctl = bin
	r, _ := http.NewRequest("GET", "/logs/?query=kubelet&tailLines=5&pattern=err&boot=0&sinceTime=2026-01-02T03:04:05Z", nil)
	w := doRequest(n, r)
	want := "--utc --no-pager --output=short-precise --since=2026-1-2 03:4:5 --pager-end --lines=5 --unit=kubelet --grep=err --boot 0\n"
	if w.Code != 200 || w.Body.String() != want {
		t.Errorf("%d %q, want %q", w.Code, w.Body, want)
	}
	n.journalctl = filepath.Join(t.TempDir(), "missing")
	if w := doRequest(n, r); w.Body.String() != "\noptions present and query resolved to log files for [kubelet]\ntry without specifying options\n" {
		t.Errorf("no journalctl: %q", w.Body)
	}
}

func doRequest(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
