package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// criLog renders CRI log lines "<stream> <tag> <content>" with a timestamp each, every
// line ended by a newline unless unended is set.
func criLog(unended bool, lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "2026-11-23T10:00:%02d.000000001Z %s", i%60, l)
		if !unended || i < len(lines)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TailLogContent reads what upstream's ReadLogs with TailLines writes into its ring buffer
// (the FallbackToLogsOnError termination message).
func TestTailLogContent(t *testing.T) {
	many := make([]string, 200)
	var last80 strings.Builder
	for i := range many {
		many[i] = fmt.Sprintf("stdout F line %03d %s", i, strings.Repeat("x", 40))
		if i >= 120 {
			fmt.Fprintf(&last80, "line %03d %s\n", i, strings.Repeat("x", 40))
		}
	}
	cases := []struct {
		name, log         string
		maxLines, maxByte int
		want, wantErr     string
	}{
		{"partial last line (echo -n DONE; false)", criLog(false, "stdout P DONE"), 80, 2048, "DONE", ""},
		{"full lines keep their newline", criLog(false, "stdout F a", "stdout F b"), 80, 2048, "a\nb\n", ""},
		{"partial lines joined", criLog(false, "stdout P par", "stdout F tial"), 80, 2048, "partial\n", ""},
		{"both streams", criLog(false, "stdout F out", "stderr F err"), 80, 2048, "out\nerr\n", ""},
		{"last lines only", criLog(false, "stdout F a", "stdout F b", "stdout F c"), 2, 2048, "b\nc\n", ""},
		{"a partial line counts as a line", criLog(false, "stdout P a", "stdout P b", "stdout F c"), 2, 2048, "bc\n", ""},
		{"last bytes only", criLog(false, "stdout F 0123456789"), 80, 4, "789\n", ""},
		// As upstream's findTailLineStartIndex: an unended last line is not counted, and
		// reading stops after maxLines lines.
		{"unended last line", criLog(true, "stdout F a", "stdout F b", "stdout F c"), 2, 2048, "a\nb\n", ""},
		{"unended last line within the limit", criLog(true, "stdout F a", "stdout P b"), 80, 2048, "a\nb", ""},
		{"empty line", criLog(false, "stdout F ", "stdout F a"), 80, 2048, "\na\n", ""},
		{"malformed line skipped, not counted", criLog(false, "stdout F a", "stdin F b", "stdout F c"), 80, 2048, "a\nc\n", ""},
		{"other tags are full lines", criLog(false, "stdout P:x a", "stdout X b", "stdout F:x c"), 80, 2048, "ab\nc\n", ""},
		{"tag without its space skipped", criLog(false, "stdout F a", "stdout F", "stdout F c"), 80, 2048, "a\nc\n", ""},
		{"malformed first line", "garbage\n" + criLog(false, "stdout F a"), 80, 2048, "",
			`failed to get parse function: unsupported log format: "garbage\n"`},
		{"empty file", "", 80, 2048, "", ""},
		{"many lines across blocks", criLog(false, many...), 80, 1 << 20, last80.String(), ""},
		{"many lines, byte limit", criLog(false, many...), 80, 2048, last80.String()[len(last80.String())-2048:], ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			if err := os.WriteFile(path, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := TailLogContent(path, tc.maxLines, tc.maxByte)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
}

func TestTailLogContentPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "0.log")
	if err := os.WriteFile(file, []byte(criLog(false, "stderr P DONE")), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if got, err := TailLogContent(link, 80, 2048); err != nil || got != "DONE" {
		t.Errorf("through a symlink: %q, %v", got, err)
	}
	missing := filepath.Join(dir, "missing.log")
	_, err := TailLogContent(missing, 80, 2048)
	if want := fmt.Sprintf("failed to try resolving symlinks in path %q: lstat %s: no such file or directory", missing, missing); err == nil || err.Error() != want {
		t.Errorf("missing file: %v, want %s", err, want)
	}
}
