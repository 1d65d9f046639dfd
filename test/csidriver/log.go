package main

import (
	"context"
	"fmt"
	"log"
	"path"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// notes are remarks a handler adds to its call's log line ("target_path created").
type notesKey struct{}

type notes struct {
	mu   sync.Mutex
	list []string
}

func note(ctx context.Context, s string) {
	if n, ok := ctx.Value(notesKey{}).(*notes); ok {
		n.mu.Lock()
		n.list = append(n.list, s)
		n.mu.Unlock()
	}
}

// logCalls logs one line per CSI call once it is answered:
//
//	csi: <Method> volume_id=<id> staging_target_path=<p> target_path=<p> -> <code> [<error>] [notes=...] req=<request as JSON, secrets dropped>
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	n := &notes{}
	resp, err := handler(context.WithValue(ctx, notesKey{}, n), req)
	log.Print(callLine(path.Base(info.FullMethod), req, resp, err, n.list))
	return resp, err
}

func callLine(method string, req, resp any, err error, notes []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "csi: %s", method)
	m, _ := req.(proto.Message)
	for _, f := range []string{"volume_id", "staging_target_path", "target_path", "volume_path", "node_id"} {
		if v := stringField(m, f); v != "" {
			fmt.Fprintf(&sb, " %s=%s", f, v)
		}
	}
	st := status.Convert(err)
	fmt.Fprintf(&sb, " -> %s", st.Code())
	if err != nil {
		fmt.Fprintf(&sb, " %q", st.Message())
	}
	if len(notes) > 0 {
		fmt.Fprintf(&sb, " notes=%q", strings.Join(notes, "; "))
	}
	if m != nil {
		fmt.Fprintf(&sb, " req=%s", compactJSON(withoutSecrets(m)))
	}
	if r, ok := resp.(proto.Message); ok && err == nil && method == "ControllerPublishVolume" {
		fmt.Fprintf(&sb, " resp=%s", compactJSON(r))
	}
	return sb.String()
}

func stringField(m proto.Message, name string) string {
	if m == nil {
		return ""
	}
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return ""
	}
	return r.Get(fd).String()
}

// withoutSecrets is a copy of m with its secrets field cleared.
func withoutSecrets(m proto.Message) proto.Message {
	fd := m.ProtoReflect().Descriptor().Fields().ByName("secrets")
	if fd == nil {
		return m
	}
	c := proto.Clone(m)
	c.ProtoReflect().Clear(fd)
	return c
}

func compactJSON(m proto.Message) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return strings.ReplaceAll(string(b), "\n", " ")
}
