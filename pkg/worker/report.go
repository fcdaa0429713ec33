package worker

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/job"
)

// What the worker gives a command besides its work dir, as environment
// variables (a job's own env may not set HELIOS_*, so these are the
// worker's word):
//
//	HELIOS_REPORT        a file the command may append its warnings to, as
//	                     JSON lines {"warning": "..."}; they go into the
//	                     chunk's result and the job's status
//	HELIOS_FETCH_SOCKET  a Unix socket where the worker's page fetcher
//	                     answers (pkg/pagefetch), when the command has no
//	                     network of its own; relative to the work dir, as
//	                     a socket address holds at most 108 bytes
//
// Both are in the work dir, the only place the sandbox lets the command
// write or connect, under names the asset bundle cannot hold (random).
const (
	EnvReport      = "HELIOS_REPORT"
	EnvFetchSocket = "HELIOS_FETCH_SOCKET"
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

// attemptFiles are the report and socket of one attempt.
type attemptFiles struct {
	report string // name in the work dir
	socket string // name in the work dir, "" without a fetcher
	fetch  io.Closer
}

// prepare names the attempt's files and starts the page fetcher.
func (h *Handler) prepare(work string) (*attemptFiles, error) {
	tag := make([]byte, 6)
	rand.Read(tag)
	a := &attemptFiles{report: ".helios-report-" + hex.EncodeToString(tag) + ".jsonl"}
	if h.Fetcher != nil {
		a.socket = ".helios-fetch-" + hex.EncodeToString(tag) + ".sock"
		c, err := h.Fetcher.Serve(filepath.Join(work, a.socket))
		if err != nil {
			return nil, err
		}
		a.fetch = c
	}
	return a, nil
}

// env is the command's environment: the job's, and the worker's files.
func (a *attemptFiles) env(work string, jobEnv map[string]string) map[string]string {
	env := maps.Clone(jobEnv)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvReport] = filepath.Join(work, a.report)
	if a.socket != "" {
		env[EnvFetchSocket] = a.socket
	}
	return env
}

func (a *attemptFiles) close() {
	if a.fetch != nil {
		a.fetch.Close()
	}
}

// warnings reads the report the command left in root: at most
// job.MaxWarnings distinct messages, each shortened. Opened through root,
// so a link the command made cannot lead the worker's read outside the
// work dir, and without blocking, so a FIFO the command made in its place
// cannot hang the worker.
func (a *attemptFiles) warnings(root *os.Root) []string {
	f, err := root.OpenFile(a.report, os.O_RDONLY|syscall.O_NONBLOCK, 0)
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
		m := job.Shorten(job.ShortenWords(w.Warning), maxWarningBytes)
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
