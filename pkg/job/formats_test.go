package job_test

import (
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

func TestFormatOf(t *testing.T) {
	tests := []struct {
		name string
		want job.Format
		ok   bool
	}{
		{"output.mp4", job.Format{Ext: "mp4", ContentType: "video/mp4", MP4: true}, true},
		{"renders/j/chunks/000001.2-1.mov", job.Format{Ext: "mov", ContentType: "video/quicktime", MP4: true}, true},
		{"/tmp/out.m4v", job.Format{Ext: "m4v", ContentType: "video/mp4", MP4: true}, true},
		{"a.mkv", job.Format{Ext: "mkv", ContentType: "video/x-matroska"}, true},
		{"a.webm", job.Format{Ext: "webm", ContentType: "video/webm"}, true},
		{"a.b.ts", job.Format{Ext: "ts", ContentType: "video/mp2t"}, true},
		{".mp4", job.Format{Ext: "mp4", ContentType: "video/mp4", MP4: true}, true},
		{"mp4", job.Format{}, false},     // a bare extension is no file name
		{"a.MP4", job.Format{}, false},   // keys are case-sensitive
		{"a.mp4/b", job.Format{}, false}, // the extension of the last element only
		{"a.avi", job.Format{}, false},   // not joinable by stream copy here
		{"a.json", job.Format{}, false},  // not a video
		{"renders/j/output", job.Format{}, false},
		{"", job.Format{}, false},
	}
	for _, tt := range tests {
		got, ok := job.FormatOf(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FormatOf(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// Every format in the table is one a spec may use, for segments and the
// output, and its segments are recognized as such.
func TestFormatsAreSegmentFormats(t *testing.T) {
	for _, f := range job.Formats() {
		t.Run(f.Ext, func(t *testing.T) {
			if f.ContentType == "" {
				t.Error("no content type")
			}
			s := nativeSpec()
			s.SegmentFormat = f.Ext
			s.Normalize()
			if err := s.Validate(testAllow); err != nil {
				t.Errorf("segmentFormat %q: %v", f.Ext, err)
			}
			if s.Output != layout.DefaultOutputKey(s.ID, f.Ext) {
				t.Errorf("default output %q", s.Output)
			}
			if key := layout.SegmentKey("j", 3, 1, 2, f.Ext); !job.IsSegmentKey("j", key) {
				t.Errorf("IsSegmentKey(%q) = false", key)
			}
			h := heliosSpec()
			for i := range h.Chunks {
				h.Chunks[i].OutputFile = "part" + string(rune('0'+i)) + "." + f.Ext
			}
			h.Normalize()
			if err := h.Validate(testAllow); err != nil {
				t.Errorf("Helios chunks writing .%s: %v", f.Ext, err)
			}
		})
	}
	for _, ext := range []string{"avi", "MP4", ""} {
		if job.IsSegmentKey("j", layout.SegmentKey("j", 3, 1, 2, ext)) {
			t.Errorf("IsSegmentKey accepts a .%s segment", ext)
		}
	}
}
