package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what the host is, read once at start.
type Machine struct {
	CPUs            int
	MemoryBytes     int64
	EphemeralBytes  int64
	MachineID       string
	SystemUUID      string
	BootID          string
	KernelVersion   string
	OSImage         string
	Architecture    string
	OperatingSystem string
}

// ReadMachine reads the host's facts; rootDir is where ephemeral storage lives.
// Identity files that are missing (common in containers) leave their field empty.
func ReadMachine(rootDir string) (Machine, error) {
	m := Machine{CPUs: runtime.NumCPU(), Architecture: runtime.GOARCH, OperatingSystem: runtime.GOOS}
	mem, err := memTotal("/proc/meminfo")
	if err != nil {
		return m, err
	}
	m.MemoryBytes = mem
	var st unix.Statfs_t
	if err := unix.Statfs(rootDir, &st); err != nil {
		return m, fmt.Errorf("statfs %s: %w", rootDir, err)
	}
	m.EphemeralBytes = int64(st.Blocks) * int64(st.Bsize)
	m.MachineID = readTrim("/etc/machine-id")
	m.SystemUUID = readTrim("/sys/class/dmi/id/product_uuid")
	m.BootID = readTrim("/proc/sys/kernel/random/boot_id")
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	m.OSImage = osImage("/etc/os-release")
	return m, nil
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// meminfo reads the named kB fields of /proc/meminfo as bytes.
func meminfo(path string, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		k := strings.TrimSuffix(f[0], ":")
		for _, want := range keys {
			if k == want {
				v, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, k, err)
				}
				out[k] = v * 1024
			}
		}
	}
	for _, want := range keys {
		if _, ok := out[want]; !ok {
			return nil, fmt.Errorf("%s: no %s", path, want)
		}
	}
	return out, nil
}

func memTotal(path string) (int64, error) {
	m, err := meminfo(path, "MemTotal")
	if err != nil {
		return 0, err
	}
	return m["MemTotal"], nil
}

func osImage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
