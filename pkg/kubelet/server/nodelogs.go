package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The node log query (upstream's NodeLogQuery, GA and locked on in v1.37):
// GET /logs/?query=<service or file>&sinceTime=&untilTime=&tailLines=&pattern=&boot=.
// Parsing and validation follow upstream's pkg/kubelet/kubelet_server_journal.go so that
// clients get the same 400 and 406 answers with the same messages.

const (
	// DefaultNodeLogDir is the folder /logs/ serves (upstream's fixed nodeLogDir).
	DefaultNodeLogDir = "/var/log/"
	maxTailLines      = 100000
	maxServiceLength  = 256
	maxServices       = 4
	// journalDateLayout is how journalctl's --since and --until take times.
	journalDateLayout = "2006-1-2 15:4:5"
)

// unsafeServiceChars are the characters a service name may not have (upstream's list of
// safe ones, so that no name can become a journalctl flag or escape).
var unsafeServiceChars = regexp.MustCompile(`[^a-zA-Z\-_.:0-9@]+`)

// nodeLogQuery is a parsed query: services or files, and the options for services.
type nodeLogQuery struct {
	Services []string
	Files    []string
	logQueryOptions
}

// logQueryOptions are the query's options (nil: not given).
type logQueryOptions struct {
	SinceTime *time.Time
	UntilTime *time.Time
	TailLines *int
	Boot      *int
	Pattern   string
}

// parseNodeLogQuery reads the query parameters. It returns nil (and no errors) when the
// request has none of them, i.e. when it asks for a file by path or for the listing.
// Malformed values are errors (upstream answers them with 400).
func parseNodeLogQuery(q url.Values) (*nodeLogQuery, field.ErrorList) {
	var errs field.ErrorList
	var n nodeLogQuery
	queries, ok := q["query"]
	for _, v := range queries {
		// A slash or backslash says it is a file; otherwise a service (blank ones are
		// dropped).
		if strings.ContainsAny(v, `/\`) {
			n.Files = append(n.Files, v)
		} else if strings.TrimSpace(v) != "" {
			n.Services = append(n.Services, v)
		}
	}
	if ok && len(n.Files) == 0 && len(n.Services) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("query"), queries, "may not be empty"))
	}
	n.SinceTime = parseQueryTime(q, "sinceTime", &errs)
	n.UntilTime = parseQueryTime(q, "untilTime", &errs)
	n.Boot = parseQueryInt(q, "boot", &errs)
	n.TailLines = parseQueryInt(q, "tailLines", &errs)
	n.Pattern = q.Get("pattern")
	if len(errs) > 0 {
		return nil, errs
	}
	if reflect.DeepEqual(n, nodeLogQuery{}) {
		return nil, nil
	}
	return &n, nil
}

func parseQueryTime(q url.Values, name string, errs *field.ErrorList) *time.Time {
	v := q.Get(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		*errs = append(*errs, field.Invalid(field.NewPath(name), v, "invalid time format"))
		return nil
	}
	return &t
}

func parseQueryInt(q url.Values, name string, errs *field.ErrorList) *int {
	v := q.Get(name)
	if v == "" {
		return nil
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		*errs = append(*errs, field.Invalid(field.NewPath(name), v, err.Error()))
		return nil
	}
	return &i
}

// validate checks a parsed query against the node (a file must exist in the log folder,
// dir); upstream answers these errors with 406.
func (n *nodeLogQuery) validate(dir string) field.ErrorList {
	errs := validateServices(n.Services)
	query := field.NewPath("query")
	switch {
	case len(n.Files) == 0 && len(n.Services) == 0:
		errs = append(errs, field.Required(query, "cannot be empty with options"))
	case len(n.Files) > 0 && len(n.Services) > 0:
		errs = append(errs, field.Invalid(query, fmt.Sprintf("%v, %v", n.Files, n.Services), "cannot specify a file and service"))
	case len(n.Files) > 1:
		errs = append(errs, field.Invalid(query, n.Files, "cannot specify more than one file"))
	case len(n.Files) == 1 && n.logQueryOptions != (logQueryOptions{}):
		errs = append(errs, field.Invalid(query, n.Files, "cannot specify file with options"))
	case len(n.Files) == 1:
		if err := statInRoot(dir, n.Files[0]); err != nil {
			errs = append(errs, field.Invalid(query, n.Files, err.Error()))
		}
	}
	if n.SinceTime != nil && n.UntilTime != nil && n.SinceTime.After(*n.UntilTime) {
		errs = append(errs, field.Invalid(field.NewPath("untilTime"), n.UntilTime, "must be after `sinceTime`"))
	}
	if n.Boot != nil && *n.Boot > 0 {
		errs = append(errs, field.Invalid(field.NewPath("boot"), *n.Boot, "must be less than 1"))
	}
	if n.TailLines != nil {
		if msgs := utilvalidation.IsInRange(*n.TailLines, 0, maxTailLines); len(msgs) > 0 {
			errs = append(errs, field.Invalid(field.NewPath("tailLines"), *n.TailLines, msgs[0]))
		}
	}
	if _, err := syntax.Parse(n.Pattern, syntax.Perl); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("pattern"), n.Pattern, err.Error()))
	}
	return errs
}

func validateServices(services []string) field.ErrorList {
	var errs field.ErrorList
	for _, s := range services {
		if len(s) > maxServiceLength {
			errs = append(errs, field.Invalid(field.NewPath("query"), s, fmt.Sprintf("length must be less than %d", maxServiceLength)))
		} else if unsafeServiceChars.MatchString(s) {
			errs = append(errs, field.Invalid(field.NewPath("query"), s, "input contains unsupported characters"))
		}
	}
	if len(services) > maxServices {
		errs = append(errs, field.TooMany(field.NewPath("query"), len(services), maxServices))
	}
	return errs
}

// statInRoot checks that name is in dir: no "..", absolute path or symlink leads out.
func statInRoot(dir, name string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = root.Stat(name)
	return err
}

// rootFS is the log folder as an fs.FS that cannot be left: what would lead out of it
// (a symlink pointing outside) is answered as forbidden rather than as an internal error.
type rootFS struct{ dir string }

func (r rootFS) Open(name string) (fs.File, error) {
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}
