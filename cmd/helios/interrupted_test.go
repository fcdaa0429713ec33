package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// A run killed by SIGKILL leaves its lease (valid for 30 s more) and, if it
// was stitching, its stitch lock (honoured for 15 minutes). The next run on
// the same folder holds the job's file lock, so it knows their holder is
// gone: it takes both over at once and finishes the job.
func TestRunAfterAKilledRun(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	spec := testkit.NativeSpec("killed", 6, 3)
	path := writeSpec(t, spec)
	spec.Normalize()
	canonical, _ := spec.Canonical()
	write := func(key string, v any) {
		data, ok := v.([]byte)
		if !ok {
			data, _ = json.Marshal(v)
		}
		p := filepath.Join(storage, filepath.FromSlash(key))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(layout.SpecKey("killed"), canonical)
	write(layout.LeaseKey("killed", 1), map[string]any{"owner": "host/999999/1", "expiresAt": time.Now().Add(30 * time.Second).UTC()})
	write(layout.StitchLockKey("killed"), map[string]any{"createdAt": time.Now().UTC(), "run": 1})

	start := time.Now()
	r := helios(t, nil, "job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", storage)
	if r.code != exitOK {
		t.Fatalf("run after a killed run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s: it waited for a lease or lock whose holder is gone", d)
	}
	if !strings.Contains(r.stdout, "done") {
		t.Errorf("stdout: %s", r.stdout)
	}
}

// Small findings of the review: a device as the spec is refused before it
// is read (it was read until memory ran out), and --concurrency has the
// bound HELIOS_CONCURRENCY has.
func TestRunRefusesWhatIsNotASpec(t *testing.T) {
	out := filepath.Join(t.TempDir(), "v.mp4")
	r := helios(t, nil, "job", "run", "/dev/zero", "--out", out, "--storage", t.TempDir())
	if r.code != exitUsage || !strings.Contains(r.stderr, "not a regular file") {
		t.Errorf("/dev/zero: exit %d %s", r.code, r.stderr)
	}
	spec := writeSpec(t, testkit.NativeSpec("bounded", 2, 1))
	r = helios(t, nil, "job", "run", spec, "--out", out, "--storage", t.TempDir(), "--concurrency", "10001")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--concurrency must be from 1 to 10000") {
		t.Errorf("--concurrency 10001: exit %d %s", r.code, r.stderr)
	}
}
