package cri

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LogLine is one line of a CRI container log file:
// "<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>".
type LogLine struct {
	Time    time.Time
	Stream  string
	Partial bool // "P": the content continues on the next line of the same stream
	Content []byte
}

var errBadLogLine = errors.New("malformed CRI log line")

// ParseLogLine parses one CRI log line (without its trailing newline).
func ParseLogLine(line []byte) (LogLine, error) {
	var l LogLine
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return l, errBadLogLine
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return l, errBadLogLine
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return l, errBadLogLine
	}
	tag, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// An empty full line has no trailing space in some writers.
		tag, content = rest, nil
	}
	switch string(tag) {
	case "F":
	case "P":
		l.Partial = true
	default:
		return l, errBadLogLine
	}
	l.Time, l.Stream, l.Content = t, string(stream), content
	return l, nil
}

// TailLogContent returns what upstream's termination-message fallback reads from a CRI
// log file (ReadLogs with TailLines maxLines into a ring of maxBytes): each of the last
// maxLines newline-ended file lines (a partial "P" line counts as one; an unended last
// line is not counted), stdout and stderr alike, with "F" lines keeping their newline and
// "P" lines not, cut to the last maxBytes bytes. Errors carry upstream's words.
func TailLogContent(path string, maxLines, maxBytes int) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("failed to try resolving symlinks in path %q: %v", path, err)
	}
	f, err := os.Open(resolved)
	if err != nil {
		return "", fmt.Errorf("failed to open log file %q: %v", resolved, err)
	}
	defer f.Close()
	data, err := tailLines(f, maxLines)
	if err != nil {
		return "", fmt.Errorf("failed to tail %d lines of log file %q: %w", maxLines, resolved, err)
	}
	var out []byte
	for n, first := maxLines, true; n > 0 && len(data) > 0; first = false {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw = data[:i+1]
		}
		data = data[len(raw):]
		content, ok := criContent(raw)
		if !ok {
			if first { // upstream picks the log format from the first line
				return "", fmt.Errorf("failed to get parse function: unsupported log format: %q", raw)
			}
			continue // upstream skips a malformed line, without counting it
		}
		out = append(out, content...)
		n--
	}
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out), nil
}

// criContent is the content of one raw CRI log line (with its newline, if any), parsed
// as upstream's parseCRILog: a timestamp, a stream, then tags up to a space ("P" first
// means partial, any other tag full); a full line's newline is kept, a partial line's
// dropped.
func criContent(raw []byte) ([]byte, bool) {
	ts, rest, ok := bytes.Cut(raw, []byte{' '})
	if !ok {
		return nil, false
	}
	if _, err := time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		return nil, false
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || string(stream) != "stdout" && string(stream) != "stderr" {
		return nil, false
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return nil, false
	}
	if tag, _, _ := bytes.Cut(tags, []byte{':'}); string(tag) == "P" {
		return bytes.TrimSuffix(content, []byte{'\n'}), true
	}
	return content, true
}

// tailLines reads from the start of the last n newline-ended lines to the end of the file;
// an unended last line is read but not counted, as upstream's findTailLineStartIndex.
func tailLines(f *os.File, n int) ([]byte, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	const block = 4096
	var buf []byte
	start, newlines := size, 0
	for start > 0 && newlines <= n {
		from := max(start-block, 0)
		chunk := make([]byte, start-from)
		if _, err := f.ReadAt(chunk, from); err != nil {
			return nil, err
		}
		newlines += bytes.Count(chunk, []byte{'\n'})
		buf, start = append(chunk, buf...), from
	}
	// Drop whole lines from the front until n newlines are left.
	for ; newlines > n; newlines-- {
		buf = buf[bytes.IndexByte(buf, '\n')+1:]
	}
	return buf, nil
}
