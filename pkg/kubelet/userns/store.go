package userns

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
)

// mappingsFile is the file in the pod's directory that records its block (upstream's
// name).
const mappingsFile = "userns"

// fileMappings is the file's JSON, upstream's userNamespace type:
// {"uidMappings":[{"hostId":N,"containerId":0,"length":L}],"gidMappings":[...]}.
type fileMappings struct {
	UIDMappings []idMapping `json:"uidMappings"`
	GIDMappings []idMapping `json:"gidMappings"`
}

type idMapping struct {
	HostID      uint32 `json:"hostId"`
	ContainerID uint32 `json:"containerId"`
	Length      uint32 `json:"length"`
}

func mappingsFor(first, length uint32) fileMappings {
	m := idMapping{HostID: first, ContainerID: 0, Length: length}
	return fileMappings{UIDMappings: []idMapping{m}, GIDMappings: []idMapping{m}}
}

// parse reads a mappings file with upstream's checks: one mapping, the same for users
// and groups, starting at ID 0 inside.
func parse(data []byte) (first, length uint32, err error) {
	var f fileMappings
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, 0, fmt.Errorf("invalid user namespace mappings file: %w", err)
	}
	switch {
	case len(f.UIDMappings) != 1:
		return 0, 0, fmt.Errorf("invalid user namespace configuration: no more than one mapping allowed")
	case len(f.GIDMappings) != 1:
		return 0, 0, fmt.Errorf("invalid user namespace configuration: GID and UID mappings should be identical")
	case f.UIDMappings[0] != f.GIDMappings[0]:
		return 0, 0, fmt.Errorf("invalid user namespace configuration: GID and UID mapping should be identical")
	case f.UIDMappings[0].ContainerID != 0:
		return 0, 0, fmt.Errorf("invalid user namespace configuration: UID 0 must be mapped")
	}
	return f.UIDMappings[0].HostID, f.UIDMappings[0].Length, nil
}

func (m *Manager) podDir(uid types.UID) string { return filepath.Join(m.podsDir, string(uid)) }

func (m *Manager) file(uid types.UID) string { return filepath.Join(m.podDir(uid), mappingsFile) }

// writeFile writes the mappings into dir atomically (a temporary file renamed over it)
// and durably (the file and the directory synced), as upstream's file store does.
func writeFile(dir string, f fileMappings) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+mappingsFile+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, mappingsFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
