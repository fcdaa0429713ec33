package layout_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

func TestJobIDFromKey(t *testing.T) {
	tests := []struct {
		key    string
		wantID string
		wantOK bool
	}{
		{"jobs/abc.json", "abc", true},
		{"jobs/job-1.json", "job-1", true},
		{"jobs/a.b_c-d.json", "a.b_c-d", true},
		{"jobs/" + strings.Repeat("x", 128) + ".json", strings.Repeat("x", 128), true},
		{"jobs/a/b.json", "", false},
		{"jobs/a/.json", "", false},
		{"renders/x.json", "", false},
		{"renders/x/spec.json", "", false},
		{"jobs/.json", "", false},
		{"jobs/..json", "", false},
		{"jobs/../x.json", "", false},
		{"jobs/./x.json", "", false},
		{"jobs/x.json/", "", false},
		{"jobs/x.yaml", "", false},
		{"jobs/x", "", false},
		{"jobs/", "", false},
		{"jobs/-x.json", "", false},
		{"jobs/x y.json", "", false},
		{"jobs/" + strings.Repeat("x", 129) + ".json", "", false},
		{"/jobs/x.json", "", false},
		{"Jobs/x.json", "", false},
		{"xjobs/x.json", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		id, ok := layout.JobIDFromKey(tt.key)
		if id != tt.wantID || ok != tt.wantOK {
			t.Errorf("JobIDFromKey(%q) = %q, %v; want %q, %v", tt.key, id, ok, tt.wantID, tt.wantOK)
		}
	}
	for _, id := range []string{"a", "job-1", "A.b_c"} {
		got, ok := layout.JobIDFromKey(layout.JobKey(id))
		if !ok || got != id {
			t.Errorf("JobIDFromKey(JobKey(%q)) = %q, %v", id, got, ok)
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct{ got, want string }{
		{layout.JobKey("j1"), "jobs/j1.json"},
		{layout.SpecKey("j1"), "renders/j1/spec.json"},
		{layout.StatusKey("j1"), "renders/j1/status.json"},
		{layout.ChunksPrefix("j1"), "renders/j1/chunks/"},
		{layout.SegmentKey("j1", 0, 3, 1, "mp4"), "renders/j1/chunks/000000.3-1.mp4"},
		{layout.SegmentKey("j1", 9999, 2, 10, "mov"), "renders/j1/chunks/009999.2-10.mov"},
		{layout.MarkerKey("j1", 0), "renders/j1/chunks/000000.json"},
		{layout.MarkerKey("j1", 42), "renders/j1/chunks/000042.json"},
		{layout.StitchLockKey("j1"), "renders/j1/stitch.lock"},
		{layout.CancelKey("j1"), "renders/j1/cancel"},
		{layout.DefaultOutputKey("j1", "webm"), "renders/j1/output.webm"},
		{layout.LeaseKey("j1", 3), "renders/j1/lease.000003"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("key = %q, want %q", tt.got, tt.want)
		}
	}
	// Write keys never fall under the trigger prefix.
	for _, k := range []string{layout.SpecKey("jobs"), layout.StatusKey("x"), layout.MarkerKey("x", 1), layout.DefaultOutputKey("jobs", "mp4")} {
		if strings.HasPrefix(k, layout.JobsPrefix) || !strings.HasPrefix(k, layout.RendersPrefix) {
			t.Errorf("%q is not under %s", k, layout.RendersPrefix)
		}
		if !layout.IsSafeRelative(k) {
			t.Errorf("%q is not a safe relative key", k)
		}
	}
}

// Zero padding makes lexical order (how a bucket lists keys) frame order.
func TestChunkKeysSortInFrameOrder(t *testing.T) {
	indices := []int{0, 1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 1234, 9999, job.MaxChunks - 1}
	var markers, segments []string
	for _, i := range indices {
		markers = append(markers, layout.MarkerKey("j", i))
		segments = append(segments, layout.SegmentKey("j", i, 1, 1+i%10, "mp4"))
	}
	for name, keys := range map[string][]string{"markers": markers, "segments": segments} {
		shuffled := slices.Clone(keys)
		slices.Reverse(shuffled)
		sort.Strings(shuffled)
		if !slices.Equal(shuffled, keys) {
			t.Errorf("%s in lexical order:\n%q\nwant frame order:\n%q", name, shuffled, keys)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, layout.ChunksPrefix("j")) {
				t.Errorf("%q is not under %s", k, layout.ChunksPrefix("j"))
			}
		}
	}
	// Every padded index has the same width.
	for _, i := range indices {
		name := strings.TrimPrefix(layout.MarkerKey("j", i), layout.ChunksPrefix("j"))
		if len(name) != len("000000.json") {
			t.Errorf("MarkerKey index %d = %q, want 6 digits", i, name)
		}
	}
}

func TestAssetDigest(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"assets/" + hex + ".tar.gz", hex, true},
		{"assets/" + strings.Repeat("f", 64) + ".tar.gz", strings.Repeat("f", 64), true},
		{"assets/" + strings.ToUpper(hex) + ".tar.gz", "", false},
		{"assets/" + hex[:63] + ".tar.gz", "", false},
		{"assets/" + hex + "0.tar.gz", "", false},
		{"assets/" + hex[:63] + "g.tar.gz", "", false},
		{"assets/" + hex + ".tgz", "", false},
		{"assets/" + hex + ".tar.gz.bak", "", false},
		{"assets/" + hex + ".tar", "", false},
		{"assets/x/" + hex + ".tar.gz", "", false},
		{"/assets/" + hex + ".tar.gz", "", false},
		{"renders/" + hex + ".tar.gz", "", false},
		{"assets/../" + hex + ".tar.gz", "", false},
		{"assets/" + hex + ".tar.gz\n", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := layout.AssetDigest(tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("AssetDigest(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
}
