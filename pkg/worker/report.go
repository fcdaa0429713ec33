package worker

import (
	"bufio"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// What the worker gives a command besides its work dir (the job's files
// and its output) and its home (HOME, XDG_*_HOME, TMPDIR: a fresh, empty
// directory beside the work dir, where the job's files cannot put a
// plugin, a layer or a configuration for a loader to find), as
// environment variables (a job's own env may not set HELIOS_*, so these
// are the worker's word):
//
//	HELIOS_REPORT        a file in the home the command may append its
//	                     warnings to, as JSON lines {"warning": "..."}; they
//	                     go into the chunk's result and the job's status
//	HELIOS_FETCH_SOCKET  a Unix socket in the home where the worker's page
//	                     fetcher answers (pkg/pagefetch), when the command
//	                     has no network of its own; relative to the work
//	                     dir, as a socket address holds at most 108 bytes
const (
	EnvReport      = "HELIOS_REPORT"
	EnvFetchSocket = "HELIOS_FETCH_SOCKET"
)

// Names in the home.
const (
	reportName = "report.jsonl"
	socketName = "fetch.sock"
)

// Most of a report read, and of each warning kept.
const (
	maxReportBytes  = 64 << 10
	maxWarningBytes = 500
)

// PageFetcher serves what a rendered page asks of other origins, on a
// Unix socket (pkg/pagefetch.Fetcher).
type PageFetcher interface {
	Serve(path string) (io.Closer, error)
}

// attempt is where one attempt runs: its work dir and its home.
type attempt struct {
	work, home string
	fetch      io.Closer // the page fetcher's socket, or nil
}

// newAttempt makes the work dir and home of an attempt in dir, and starts
// the page fetcher in the home.
func (h *Handler) newAttempt(dir string) (*attempt, error) {
	a := &attempt{work: filepath.Join(dir, "work"), home: filepath.Join(dir, "home")}
	for _, d := range []string{a.work, a.home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if h.Fetcher != nil {
		c, err := h.Fetcher.Serve(filepath.Join(a.home, socketName))
		if err != nil {
			return nil, err
		}
		a.fetch = c
	}
	return a, nil
}

// env is the command's environment: the job's, and the worker's files.
func (a *attempt) env(jobEnv map[string]string) map[string]string {
	env := maps.Clone(jobEnv)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvReport] = filepath.Join(a.home, reportName)
	if a.fetch != nil {
		env[EnvFetchSocket] = filepath.Join("..", filepath.Base(a.home), socketName)
	}
	return env
}

func (a *attempt) close() {
	if a.fetch != nil {
		a.fetch.Close()
	}
}

// warnings reads the report the command left in its home: at most
// job.MaxWarnings distinct messages, each shortened. Opened through root,
// so a link the command made cannot lead the worker's read outside the
// work dir, and without blocking, so a FIFO the command made in its place
// cannot hang the worker.
func (a *attempt) warnings() []string {
	root, err := os.OpenRoot(a.home)
	if err != nil {
		return nil
	}
	defer root.Close()
	f, err := root.OpenFile(reportName, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil { // none written, or not a file of the work dir
		return nil
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil
	}
	var out []string
	lines := bufio.NewScanner(io.LimitReader(f, maxReportBytes))
	lines.Buffer(make([]byte, 0, 4096), maxReportBytes)
	for lines.Scan() && len(out) < job.MaxWarnings {
		var w struct {
			Warning string `json:"warning"`
		}
		if json.Unmarshal(lines.Bytes(), &w) != nil || w.Warning == "" {
			continue
		}
		m := joberr.Shorten(joberr.ShortenWords(w.Warning), maxWarningBytes)
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
