package job

import (
	"path"
	"regexp"
	"strings"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// Format is a container the chunk segments, and so the output, may use:
// one the concat demuxer joins with stream copy.
type Format struct {
	Ext         string // without the dot, as a spec's segmentFormat names it: "mp4"
	ContentType string // stored with the segments and the output
	// MP4 is set for the MP4 family (ISO BMFF): its segments are made
	// fragmented MP4 placed on the job's timeline and joined as bytes
	// (package fmp4); a progressive output of it can be made faststart.
	// The other containers are joined by ffmpeg's concat demuxer.
	MP4 bool
}

// Formats returns every segment format, in the order messages list them.
// It is the one list: validation, segment keys, content types and the
// stitcher's ffmpeg arguments all read it.
func Formats() []Format {
	return []Format{
		{Ext: "mp4", ContentType: "video/mp4", MP4: true},
		{Ext: "mov", ContentType: "video/quicktime", MP4: true},
		{Ext: "mkv", ContentType: "video/x-matroska"},
		{Ext: "webm", ContentType: "video/webm"},
		{Ext: "ts", ContentType: "video/mp2t"},
		{Ext: "m4v", ContentType: "video/mp4", MP4: true},
	}
}

// FormatOf returns the format of a file or storage key from its extension,
// matched exactly (keys are case-sensitive): "a/b.mp4" is mp4, "b.MP4" and
// "mp4" are no format.
func FormatOf(name string) (Format, bool) {
	ext := strings.TrimPrefix(path.Ext(name), ".")
	for _, f := range Formats() {
		if f.Ext == ext {
			return f, true
		}
	}
	return Format{}, false
}

// formatExts lists the extensions, without dots, in table order.
func formatExts() []string {
	fs := Formats()
	exts := make([]string, len(fs))
	for i, f := range fs {
		exts[i] = f.Ext
	}
	return exts
}

// segmentName matches a segment's name in ChunksPrefix, in one of Formats.
var segmentName = regexp.MustCompile(`^[0-9]{6}\.[0-9]+-[0-9]+\.(` + strings.Join(formatExts(), "|") + `)$`)

// IsSegmentKey reports whether key names a segment of job id.
func IsSegmentKey(id, key string) bool {
	rest, ok := strings.CutPrefix(key, layout.ChunksPrefix(id))
	return ok && segmentName.MatchString(rest)
}
