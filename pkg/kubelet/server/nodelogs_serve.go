package server

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nodeLogs serves /logs/ as upstream's kubelet does: the files of the node's log folder
// (a listing for the folder itself), and with enableSystemLogQuery the query form, which
// reads services' logs from the journal (journalctl) or, for services that do not log
// there, from <dir>/<service>, <dir>/<service>.log or <dir>/<service>/<service>.log.
type nodeLogs struct {
	dir   string
	query bool
	// journalctl is the program services' logs are read with ("journalctl"); when it is
	// missing or knows no unit of the service, the service's log files are read instead.
	journalctl string
	files      http.Handler
}

func newNodeLogs(dir string, query bool) *nodeLogs {
	if dir == "" {
		dir = DefaultNodeLogDir
	}
	return &nodeLogs{dir: dir, query: query, journalctl: "journalctl", files: http.FileServerFS(rootFS{dir})}
}

// ServeHTTP answers a request whose path is below /logs/.
func (n *nodeLogs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel, ok := strings.CutPrefix(r.URL.Path, "/logs/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !n.query {
		n.serveFile(w, r, rel)
		return
	}
	q, errs := parseNodeLogQuery(r.URL.Query())
	if len(errs) > 0 {
		httpError(w, errs.ToAggregate().Error(), http.StatusBadRequest)
		return
	}
	if q == nil {
		n.serveFile(w, r, rel)
		return
	}
	if rel != "" {
		httpError(w, "path not allowed in query mode", http.StatusNotAcceptable)
		return
	}
	if errs := q.validate(n.dir); len(errs) > 0 {
		httpError(w, errs.ToAggregate().Error(), http.StatusNotAcceptable)
		return
	}
	if len(q.Services) > 0 {
		n.serveServices(w, r, q)
		return
	}
	// Validation left exactly one file (a Windows client may write it with \).
	n.serveFile(w, r, filepath.ToSlash(q.Files[0]))
}

// serveFile serves rel (a file, or a folder's listing) from the log folder.
func (n *nodeLogs) serveFile(w http.ResponseWriter, r *http.Request, rel string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + strings.TrimPrefix(rel, "/")
	r2.URL.RawPath = ""
	n.files.ServeHTTP(w, r2)
}

// serveServices writes the services' logs as plain text (gzip when asked for), within
// upstream's 30 s; problems are written into the text, as upstream does.
func (n *nodeLogs) serveServices(w http.ResponseWriter, r *http.Request, q *nodeLogQuery) {
	var out io.Writer = w
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	if r.Header.Get("Accept-Encoding") == "gzip" {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	var journal, files []string
	for _, s := range q.Services {
		if n.inJournal(ctx, s) {
			journal = append(journal, s)
		} else {
			files = append(files, s)
		}
	}
	if len(journal) > 0 {
		n.copyJournal(ctx, out, q, journal)
	}
	if len(files) > 0 && q.logQueryOptions != (logQueryOptions{}) {
		fmt.Fprintf(out, "\noptions present and query resolved to log files for %v\ntry without specifying options\n", files)
		return
	}
	for _, s := range files {
		if ctx.Err() != nil {
			fmt.Fprintf(out, "\ncontext error: %v\n", ctx.Err())
			return
		}
		n.copyServiceFile(ctx, out, s)
	}
}

// inJournal reports whether the journal knows a unit of the service.
func (n *nodeLogs) inJournal(ctx context.Context, service string) bool {
	b, err := exec.CommandContext(ctx, n.journalctl, "--field", "_SYSTEMD_UNIT").CombinedOutput()
	return err == nil && strings.Contains(string(b), service+".service")
}

// copyJournal writes the services' journal with the query's options (upstream's
// journalctl arguments).
func (n *nodeLogs) copyJournal(ctx context.Context, w io.Writer, q *nodeLogQuery, services []string) {
	args := []string{"--utc", "--no-pager", "--output=short-precise"}
	if q.SinceTime != nil {
		args = append(args, "--since="+q.SinceTime.Format(journalDateLayout))
	}
	if q.UntilTime != nil {
		args = append(args, "--until="+q.UntilTime.Format(journalDateLayout))
	}
	if q.TailLines != nil {
		args = append(args, "--pager-end", fmt.Sprintf("--lines=%d", *q.TailLines))
	}
	for _, s := range services {
		args = append(args, "--unit="+s)
	}
	if q.Pattern != "" {
		args = append(args, "--grep="+q.Pattern)
	}
	if q.Boot != nil {
		args = append(args, "--boot", fmt.Sprint(*q.Boot))
	}
	cmd := exec.CommandContext(ctx, n.journalctl, args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			fmt.Fprintf(w, "\nerror: journal output not available\n")
		}
	}
}

// copyServiceFile writes the first of <service>, <service>.log and
// <service>/<service>.log that is a file in the log folder.
func (n *nodeLogs) copyServiceFile(ctx context.Context, w io.Writer, service string) {
	var err error
	for _, name := range []string{service, service + ".log", service + "/" + service + ".log"} {
		if err = copyInRoot(ctx, w, n.dir, name); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(w, "\nlog not found for %s\n", service)
	case err != nil:
		fmt.Fprintf(w, "\nerror getting log for %s: %v\n", service, err)
	}
}

// copyInRoot copies dir/name to w (os.ErrNotExist for a folder), until ctx ends.
func copyInRoot(ctx context.Context, w io.Writer, dir, name string) error {
	f, err := os.OpenInRoot(dir, name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return os.ErrNotExist
	}
	_, err = io.Copy(w, ctxReader{ctx, f})
	return err
}

// ctxReader stops reading once its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
