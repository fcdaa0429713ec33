package storage_test

import (
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Objects are stored with the content type of their format (job.Formats),
// so a presigned URL plays in a browser.
func TestContentType(t *testing.T) {
	b, err := storage.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct{ key, want string }{
		{"renders/j/output.mp4", "video/mp4"},
		{"renders/j/chunks/000001.1-1.m4v", "video/mp4"},
		{"outputs/j/film.mov", "video/quicktime"},
		{"outputs/j/film.mkv", "video/x-matroska"},
		{"outputs/j/film.webm", "video/webm"},
		{"outputs/j/film.ts", "video/mp2t"},
		{"renders/j/chunks/000001.json", "application/json"},
		{"renders/j/stitch.lock", "application/octet-stream"},
		{"outputs/j/film.MP4", "application/octet-stream"}, // keys are case-sensitive
		{"outputs/j/film.avi", "application/octet-stream"},
	}
	for _, f := range job.Formats() {
		tests = append(tests, struct{ key, want string }{"table/x." + f.Ext, f.ContentType})
	}
	for _, tt := range tests {
		if err := storage.Create(t.Context(), b, tt.key, []byte("x")); err != nil {
			t.Fatal(err)
		}
		attrs, err := b.Attributes(t.Context(), tt.key)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.ContentType != tt.want {
			t.Errorf("%s: content type %q, want %q", tt.key, attrs.ContentType, tt.want)
		}
	}
}
