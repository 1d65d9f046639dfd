package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// logOptions say which part of a CRI log file to print and how.
type logOptions struct {
	// tail keeps only the last tail lines (-1: all).
	tail int64
	// limit stops after limit bytes of output (0: no limit).
	limit int64
	// since skips lines written before it.
	since time.Time
	// timestamps prefixes each line with its RFC3339Nano time and a space.
	timestamps bool
	// stream keeps one stream ("stdout" or "stderr"; "": both).
	stream string
	// follow keeps reading what the runtime appends until the container stops.
	follow bool
}

// How often a followed log is read again, and how often, when nothing new came, the
// container is checked for having stopped.
var (
	followPoll  = 100 * time.Millisecond
	statusCheck = time.Second
)

// logLine is one runtime line: a whole line (F, printed with its newline) or a part of
// a longer one (P, printed as it is). As upstream's ReadLogs, parts are printed as they
// come, not held back for the rest: a container whose last output has no newline (the
// runtime writes it as a P line) still shows it, and lines of two streams may interleave.
type logLine struct {
	time    time.Time
	stream  string
	content []byte // with its newline unless partial
	partial bool
}

// logReader turns a CRI log file into runtime lines, keeping a line the runtime has not
// finished writing (no newline yet) until the rest arrives.
type logReader struct {
	r       *bufio.Reader
	rawPart []byte // a runtime line without its newline yet
}

func newLogReader(r io.Reader) *logReader {
	return &logReader{r: bufio.NewReaderSize(r, 64*1024)}
}

// next returns the next runtime line, or io.EOF when the file has no more (yet).
func (lr *logReader) next() (*logLine, error) {
	for {
		raw, err := lr.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				lr.rawPart = append(lr.rawPart, raw...)
			}
			return nil, err
		}
		if len(lr.rawPart) > 0 {
			raw = append(lr.rawPart, raw...)
			lr.rawPart = nil
		}
		l, err := cri.ParseLogLine(bytes.TrimSuffix(raw, []byte{'\n'}))
		if err != nil {
			continue // not a CRI line: skipped, as upstream does
		}
		out := &logLine{time: l.Time, stream: l.Stream, content: l.Content, partial: l.Partial}
		if !l.Partial {
			out.content = append(out.content, '\n')
		}
		return out, nil
	}
}

// logWriter prints runtime lines as the options say and counts the bytes for limitBytes.
type logWriter struct {
	w       io.Writer
	o       logOptions
	written int64
	midLine bool // the last line printed was a part: the next one continues it
}

var errLimitReached = errors.New("limitBytes reached")

func (lw *logWriter) wants(l *logLine) bool {
	return (lw.o.stream == "" || l.stream == lw.o.stream) && !l.time.Before(lw.o.since)
}

func (lw *logWriter) write(l *logLine) error {
	out := l.content
	if lw.o.timestamps && !lw.midLine { // a timestamp starts each printed line
		out = append([]byte(l.time.Format(time.RFC3339Nano)+" "), out...)
	}
	lw.midLine = l.partial
	if lw.o.limit > 0 && lw.written+int64(len(out)) >= lw.o.limit {
		out = out[:lw.o.limit-lw.written]
		_, err := lw.w.Write(out)
		lw.written += int64(len(out))
		if err != nil {
			return err
		}
		return errLimitReached
	}
	n, err := lw.w.Write(out)
	lw.written += int64(n)
	return err
}

// readLog writes the CRI log in r to w as o says. With o.follow it goes on reading what
// the runtime appends until running reports that the container has stopped (then prints
// what is left), or ctx ends (the client went away).
func readLog(ctx context.Context, r io.Reader, o logOptions, w io.Writer, running func(context.Context) bool) error {
	lr, lw := newLogReader(r), &logWriter{w: w, o: o}
	if err := writeExisting(lr, lw); err != nil {
		return done(err)
	}
	if !o.follow {
		return nil
	}
	ticker := time.NewTicker(followPoll)
	defer ticker.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		// Look at the container before reading, so that what it wrote before it stopped
		// is read after.
		stopped := false
		if time.Since(lastCheck) >= statusCheck {
			stopped, lastCheck = !running(ctx), time.Now()
		}
		if err := copyLines(lr, lw); err != nil {
			return done(err)
		}
		if stopped {
			return nil
		}
	}
}

// writeExisting prints what the file holds now, only its last lines with a tail.
func writeExisting(lr *logReader, lw *logWriter) error {
	if lw.o.tail < 0 {
		return copyLines(lr, lw)
	}
	// The last tail lines, in a ring: start is the oldest once it is full.
	ring, start := make([]*logLine, 0, min(lw.o.tail, 1024)), 0
	for {
		l, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if !lw.wants(l) || lw.o.tail == 0 {
			continue
		}
		if int64(len(ring)) < lw.o.tail {
			ring = append(ring, l)
			continue
		}
		ring[start] = l
		start = (start + 1) % len(ring)
	}
	for i := range ring {
		if err := lw.write(ring[(start+i)%len(ring)]); err != nil {
			return err
		}
	}
	return nil
}

// copyLines prints every runtime line up to the end of the file.
func copyLines(lr *logReader, lw *logWriter) error {
	for {
		l, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !lw.wants(l) {
			continue
		}
		if err := lw.write(l); err != nil {
			return err
		}
	}
}

func done(err error) error {
	if errors.Is(err, errLimitReached) {
		return nil
	}
	return err
}
