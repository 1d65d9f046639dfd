package dns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// maxResolvConf bounds how much of a resolver file is read (upstream's 10 MB).
const maxResolvConf = 10 << 20

// ReadResolvConf reads and parses the node's resolver file, as upstream does for every
// sandbox (so edits reach new pods); "" is no file and gives an empty Resolver.
func ReadResolvConf(path string) (Resolver, error) {
	if path == "" {
		return Resolver{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Resolver{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResolvConf+1))
	if err != nil {
		return Resolver{}, err
	}
	if len(b) > maxResolvConf {
		return Resolver{}, errors.New("the read limit is reached")
	}
	r, err := ParseResolvConf(string(b))
	if err != nil {
		return Resolver{}, fmt.Errorf("Encountered error while parsing resolv conf file. Error: %w", err) // upstream's words
	}
	return r, nil
}

// ParseResolvConf reads a resolv.conf as upstream: nameserver lines add up; the last
// search line wins, without "." and trailing dots (so a domain counts once against the
// limits); options add up, a later option of the same name replacing the earlier one. A
// nameserver line without an address is an error.
func ParseResolvConf(content string) (Resolver, error) {
	var r Resolver
	var errs []error
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				errs = append(errs, errors.New("nameserver list is empty ")) // sic
				continue
			}
			r.Servers = append(r.Servers, f[1])
		case "search":
			r.Searches = nil
			for _, s := range f[1:] {
				if s != "." {
					r.Searches = append(r.Searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			r.Options = addOptions(r.Options, f[1:])
		}
	}
	return r, utilerrors.NewAggregate(errs)
}

// addOptions appends resolv.conf options, one of an existing name replacing it in place.
func addOptions(have, add []string) []string {
	for _, o := range add {
		name, _, _ := strings.Cut(o, ":")
		i := 0
		for ; i < len(have); i++ {
			if n, _, _ := strings.Cut(have[i], ":"); n == name {
				have[i] = o
				break
			}
		}
		if i == len(have) {
			have = append(have, o)
		}
	}
	return have
}

// CheckResolvConf is upstream's start-up check of the node's resolver file against the
// limits left for the host's search paths: the first problem found, as a node event.
func CheckResolvConf(path, clusterDomain string) *Event {
	ev := func(msg string) *Event {
		return &Event{OnNode: true, Reason: ReasonCheckLimitsForResolvConf, Message: msg}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ev(err.Error())
	}
	r, err := ParseResolvConf(string(b))
	if err != nil {
		return ev(err.Error())
	}
	limit := MaxSearchPaths
	if clusterDomain != "" {
		limit -= 3 // the cluster's own search paths come first
	}
	if len(r.Searches) > limit {
		return ev(fmt.Sprintf("Resolv.conf file '%s' contains search line consisting of more than %d domains!", path, limit))
	}
	for _, s := range r.Searches {
		if len(s) > maxSearchLen {
			return ev(fmt.Sprintf("Resolv.conf file %q contains a search path which length is more than allowed %d chars!", path, maxSearchLen))
		}
	}
	if len(strings.Join(r.Searches, " ")) > MaxSearchChars {
		return ev(fmt.Sprintf("Resolv.conf file '%s' contains search line which length is more than allowed %d chars!", path, MaxSearchChars))
	}
	return nil
}
