package cri

import (
	"bytes"
	"errors"
	"os"
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

// TailLogContent returns the content of the last maxLines lines of a CRI log file (partial
// lines joined), cut to its last maxBytes bytes: what upstream puts in a termination
// message with FallbackToLogsOnError.
func TailLogContent(path string, maxLines, maxBytes int) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var lines [][]byte
	var pending []byte
	for _, raw := range bytes.Split(data, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		l, err := ParseLogLine(raw)
		if err != nil {
			continue
		}
		pending = append(pending, l.Content...)
		if !l.Partial {
			lines = append(lines, append(pending, '\n'))
			pending = nil
		}
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	out := bytes.Join(lines, nil)
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out), nil
}
