package cri

import (
	"bytes"
	"testing"
)

// FuzzParseLogLine: any line parses or is refused, never a panic; a parsed line names a
// known stream and its content is the end of the input.
func FuzzParseLogLine(f *testing.F) {
	for _, l := range []string{
		"2026-11-23T10:00:00.123456789Z stdout F hello",
		"2026-11-23T10:00:00Z stderr P part",
		"2026-11-23T10:00:00Z stdout F ",
		"garbage", "", "2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z stdout",
	} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := ParseLogLine(line)
		if err != nil {
			return
		}
		if l.Stream != "stdout" && l.Stream != "stderr" {
			t.Fatalf("%q: stream %q", line, l.Stream)
		}
		if !bytes.HasSuffix(line, l.Content) {
			t.Fatalf("%q: content %q is not the line's end", line, l.Content)
		}
	})
}
