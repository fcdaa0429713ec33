package fmp4_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/fmp4"
	"github.com/helios-project/infrastructure/pkg/framerate"
)

// TestPlaceErrors feeds Place chunks it must refuse, and checks that the
// error says why.
func TestPlaceErrors(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	fragment := func(in, out string) { run(t, fmp4.FragmentArgs(file(in), file(out), nil)...) }
	run(t, renderArgs(x264BFrames(), "25", 0, 5, file("25fps.mp4"))...)
	fragment("25fps.mp4", "25fps.frag.mp4")
	run(t, renderArgs(x264BFrames(), "30", 0, 5, file("30fps.mp4"))...)
	fragment("30fps.mp4", "30fps.frag.mp4")
	// A job spec's fps of 29.97 in {fps} makes ffmpeg render at 2997/100.
	run(t, renderArgs(x264BFrames(), "29.97", 0, 5, file("2997.mp4"))...)
	fragment("2997.mp4", "2997.frag.mp4")
	run(t, withOutputArgs(renderArgs(x264BFrames(), "25", 0, 5, file("faststart.mp4")), "-movflags", "+faststart")...)
	run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine",
		"-frames:v", "5", "-t", "0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", file("av.mp4"))
	// Every stream, as a tool other than FragmentArgs may fragment it.
	run(t, "ffmpeg", "-v", "error", "-i", file("av.mp4"), "-map", "0", "-c", "copy",
		"-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-y", file("av.frag.mp4"))
	whole, err := os.ReadFile(file("25fps.frag.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("truncated.frag.mp4"), whole[:len(whole)-200], 0o600); err != nil {
		t.Fatal(err)
	}
	init, _ := fmp4.ReadInit(bytes.NewReader(whole))
	if err := os.WriteFile(file("init-only.mp4"), init.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("notes.mp4"), []byte("not a video\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("empty.mp4"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	fps := func(num, den uint32) fmp4.Placement {
		return fmp4.Placement{Start: 10, Rate: framerate.Rate{Num: num, Den: den}, Sequence: 1, Delay: fmp4.DefaultDelay}
	}
	noDelay := fps(25, 1)
	noDelay.Delay = 0
	negative := fps(25, 1)
	negative.Start = -1
	tests := []struct {
		name, file string
		p          fmp4.Placement
		wantErr    string
	}{
		{"timescale not a whole number of frames", "25fps.frag.mp4", fps(24, 1),
			"a frame at 24 fps is 12800×1/24 ticks of timescale 12800, not a whole number"},
		{"samples of another frame rate", "30fps.frag.mp4", fps(60, 1),
			"sample 1 lasts 512 ticks; a frame at 60 fps is 256 ticks of timescale 15360"},
		{"29.97 is not 30000/1001", "2997.frag.mp4", fps(30000, 1001),
			"a frame at 30000/1001 fps is 11988×1001/30000 ticks of timescale 11988, not a whole number"},
		{"B-frames without a delay", "25fps.frag.mp4", noDelay,
			"would be presented 1024 ticks before it is decoded: the chunk reorders frames by more than the delay of 0 frames"},
		{"not fragmented", "25fps.mp4", fps(25, 1),
			"mdat box at byte 40 is not after a moof: the chunk is not fragmented"},
		{"not fragmented, index first", "faststart.mp4", fps(25, 1),
			"the chunk is not fragmented: its moov has no mvex"},
		{"audio", "av.frag.mp4", fps(25, 1),
			"the chunk has tracks 1 (vide avc1), 2 (soun mp4a): only a single video track can be placed"},
		{"truncated", "truncated.frag.mp4", fps(25, 1), "truncated"},
		{"init only", "init-only.mp4", fps(25, 1), "no moof box: the chunk is not fragmented"},
		{"not MP4", "notes.mp4", fps(25, 1), `unexpected box "a vi" at byte 0`},
		{"empty", "empty.mp4", fps(25, 1), "no moov box"},
		{"negative start", "25fps.frag.mp4", negative, "start frame -1 is negative"},
		{"no rate", "25fps.frag.mp4", fps(0, 1), "frame rate 0/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open(file(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			placed, err := fmp4.Place(io.Discard, f, tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Place = %+v, %v; want an error containing %q", placed, err, tt.wantErr)
			}
		})
	}
}

// TestPlaceRewrites checks what Place writes, box by box: chunks of
// several fragments, sequence numbers from a stride, and the init.
func TestPlaceRewrites(t *testing.T) {
	testkit.RequireFFmpeg(t)
	dir := t.TempDir()
	// A keyframe every 4 frames: several fragments per chunk.
	enc := x264BFrames()
	enc.args = append(enc.args, "-g", "4")
	chunks := renderChunks(t, dir, enc, "24", []int{10, 1, 9})
	const stride = 1000
	var joined bytes.Buffer
	var fragments []int
	for i, c := range chunks {
		f, err := os.Open(c.fragmented)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		placed, err := fmp4.Place(&out, f, fmp4.Placement{Start: c.start, Rate: framerate.Rate{Num: 24, Den: 1}, Sequence: uint32(i*stride + 1), Delay: fmp4.DefaultDelay})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			joined.Write(placed.Init.Bytes())
			if tr := placed.Init.Tracks[0]; tr.EditMediaTime != 2*512 {
				t.Errorf("placed init edit list media time %d; want 2 frames, 1024", tr.EditMediaTime)
			}
		}
		if placed.Samples != c.count || placed.Timescale != 12288 || placed.SampleDuration != 512 || placed.FirstDecodeTime != uint64(c.start)*512 {
			t.Errorf("chunk %d: placed %+v; want %d samples, timescale 12288, 512 ticks each, first decode time %d", i, placed, c.count, c.start*512)
		}
		fragments = append(fragments, placed.Fragments)
		joined.Write(out.Bytes())
	}
	if fragments[0] != 3 || fragments[1] != 1 || fragments[2] != 3 {
		t.Errorf("fragments per chunk %v; want [3 1 3] (a keyframe every 4 frames)", fragments)
	}

	file, err := mp4.DecodeFile(bytes.NewReader(joined.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var boxes []string
	for _, b := range file.Children {
		boxes = append(boxes, b.Type())
	}
	if got := strings.Join(boxes, " "); got != "ftyp moov"+strings.Repeat(" moof mdat", 7) {
		t.Errorf("joined top-level boxes %q; want ftyp, moov, then 7 moof+mdat (no mfra, no sidx)", got)
	}
	if trak := file.Moov.Trak; trak.Edts == nil || len(trak.Edts.Elst) != 1 || trak.Edts.Elst[0].Entries[0].MediaTime != 1024 || trak.Edts.Elst[0].Entries[0].SegmentDuration != 0 {
		t.Errorf("joined edit list %+v; want one edit from 1024 to the end", trak.Edts)
	}
	var seqs []uint32
	var decode uint64
	for _, seg := range file.Segments {
		for _, frag := range seg.Fragments {
			seqs = append(seqs, frag.Moof.Mfhd.SequenceNumber)
			if got := frag.Moof.Traf.Tfdt.BaseMediaDecodeTime(); got != decode {
				t.Errorf("fragment %d: tfdt %d; want %d, where the previous ends", len(seqs), got, decode)
			}
			decode += uint64(frag.Moof.Traf.Trun.SampleCount()) * 512
		}
	}
	want := []uint32{1, 2, 3, 1001, 2001, 2002, 2003}
	if !slices.Equal(seqs, want) {
		t.Errorf("sequence numbers %v; want %v", seqs, want)
	}
}
