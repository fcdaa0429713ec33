package worker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/worker"
)

// entry is one tar entry; body is the content of a regular file.
type entry struct {
	name     string
	typ      byte
	body     string
	mode     int64
	linkname string
}

func file(name, body string) entry { return entry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir} }

// tarGz builds a tar.gz archive in memory.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: mode, Linkname: e.linkname, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("WriteHeader(%q): %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// workDirs makes base/{work,sibling} and returns base, work and sibling.
func workDirs(t *testing.T) (base, work, sibling string) {
	t.Helper()
	base = t.TempDir()
	work = filepath.Join(base, "work")
	sibling = filepath.Join(base, "sibling")
	for _, d := range []string{work, sibling} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return base, work, sibling
}

// tree lists every path under root, relative and slash-separated, with a
// trailing slash on directories.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNothingOutside checks that base holds only work/ and an empty
// sibling/ (and whatever is under work/).
func assertNothingOutside(t *testing.T, base, work, sibling string) {
	t.Helper()
	var outside []string
	for _, p := range tree(t, base) {
		if p == "work/" || strings.HasPrefix(p, "work/") || p == "sibling/" {
			continue
		}
		outside = append(outside, p)
	}
	if len(outside) > 0 {
		t.Errorf("Extract wrote outside the target dir: %q", outside)
	}
	if got := tree(t, sibling); len(got) != 0 {
		t.Errorf("sibling dir is not empty: %q", got)
	}
	// Nothing under work is a link.
	_ = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&(fs.ModeSymlink|fs.ModeDevice|fs.ModeNamedPipe|fs.ModeCharDevice) != 0 {
			t.Errorf("Extract created %s of type %v", p, d.Type())
		}
		return nil
	})
}

func TestExtractNormalArchive(t *testing.T) {
	base, work, sibling := workDirs(t)
	archive := tarGz(t,
		dir("./"),
		dir("."),
		dir("assets/"),
		file("assets/fonts/Inter.ttf", "font bytes"), // parent made without its own entry
		file("assets/img/deep/er/logo.png", "\x89PNG\r\n\x1a\nbinary\x00data"),
		file("./top.txt", "top level\n"),
		dir("./empty/"),
		dir("trailing"),
		file("empty-file", ""),
		entry{name: "bin/run.sh", typ: tar.TypeReg, body: "#!/bin/sh\necho hi\n", mode: 0o755},
		entry{name: "bin/setuid", typ: tar.TypeReg, body: "x", mode: 0o4777},
		file("..dots..txt", "not a traversal"),
	)
	if err := worker.Extract(bytes.NewReader(archive), work, 1<<20); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	want := map[string]string{
		"assets/fonts/Inter.ttf":      "font bytes",
		"assets/img/deep/er/logo.png": "\x89PNG\r\n\x1a\nbinary\x00data",
		"top.txt":                     "top level\n",
		"empty-file":                  "",
		"bin/run.sh":                  "#!/bin/sh\necho hi\n",
		"bin/setuid":                  "x",
		"..dots..txt":                 "not a traversal",
	}
	for name, body := range want {
		got, err := os.ReadFile(filepath.Join(work, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != body {
			t.Errorf("%s = %q, want %q", name, got, body)
		}
	}
	wantTree := []string{
		"..dots..txt", "assets/", "assets/fonts/", "assets/fonts/Inter.ttf", "assets/img/", "assets/img/deep/",
		"assets/img/deep/er/", "assets/img/deep/er/logo.png", "bin/", "bin/run.sh", "bin/setuid",
		"empty-file", "empty/", "top.txt", "trailing/",
	}
	got := tree(t, work)
	slices.Sort(got)
	slices.Sort(wantTree)
	if !slices.Equal(got, wantTree) {
		t.Errorf("extracted tree =\n%q\nwant\n%q", got, wantTree)
	}
	if fi, err := os.Stat(filepath.Join(work, "bin", "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/run.sh lost its execute bit: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(work, "bin", "setuid")); err != nil || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("bin/setuid has mode %v, want no setuid bit and no group/other write", fi.Mode())
	}
	assertNothingOutside(t, base, work, sibling)
}

func TestExtractEmptyArchive(t *testing.T) {
	_, work, _ := workDirs(t)
	if err := worker.Extract(bytes.NewReader(tarGz(t)), work, 0); err != nil {
		t.Fatalf("Extract(empty archive): %v", err)
	}
	if got := tree(t, work); len(got) != 0 {
		t.Errorf("work dir = %q, want empty", got)
	}
}

func TestExtractRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name string
		bad  entry
		want string // in the error, besides the entry's quoted name
	}{
		{"parent", file("../evil", "x"), "escapes the work dir"},
		{"parent into sibling", file("../sibling/evil", "x"), "escapes the work dir"},
		{"absolute", file("/abs", "x"), "escapes the work dir"},
		{"absolute into sibling", file("/sibling/evil", "x"), "escapes the work dir"},
		{"climb through a subdir", file("a/../../evil", "x"), "escapes the work dir"},
		{"dot-dot inside", file("a/../evil", "x"), "escapes the work dir"},
		{"dot-dot at the end", dir("a/.."), "escapes the work dir"},
		{"dot prefix twice", file("././evil", "x"), "escapes the work dir"},
		{"double slash", file("a//evil", "x"), "escapes the work dir"},
		{"backslash", file(`..\evil`, "x"), "escapes the work dir"},
		{"parent dir entry", dir("../evil/"), "escapes the work dir"},
		{"dir into sibling", dir("../sibling/newdir/"), "escapes the work dir"},
		{"symlink to sibling", entry{name: "link", typ: tar.TypeSymlink, linkname: "../sibling"}, "is a symlink"},
		{"symlink to absolute", entry{name: "passwd", typ: tar.TypeSymlink, linkname: "/etc/passwd"}, "is a symlink"},
		{"symlink inside", entry{name: "a/link", typ: tar.TypeSymlink, linkname: "b"}, "is a symlink"},
		{"hard link out", entry{name: "hl", typ: tar.TypeLink, linkname: "../sibling/x"}, "is a hard link"},
		{"hard link inside", entry{name: "hl", typ: tar.TypeLink, linkname: "ok.txt"}, "is a hard link"},
		{"char device", entry{name: "null", typ: tar.TypeChar}, "is a device"},
		{"block device", entry{name: "sda", typ: tar.TypeBlock}, "is a device"},
		{"fifo", entry{name: "pipe", typ: tar.TypeFifo}, "is a fifo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, work, sibling := workDirs(t)
			archive := tarGz(t, file("ok.txt", "fine"), tt.bad, file("after.txt", "must not be written"))
			err := worker.Extract(bytes.NewReader(archive), work, 1<<20)
			if err == nil {
				t.Fatalf("Extract accepted entry %q", tt.bad.name)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.bad.name)) {
				t.Errorf("error %q does not name the entry %q", err, tt.bad.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			// Extraction stops at the bad entry.
			if _, err := os.Stat(filepath.Join(work, "after.txt")); !os.IsNotExist(err) {
				t.Errorf("an entry after the refused one was extracted")
			}
			for _, p := range tree(t, work) {
				if p != "ok.txt" && p != "a/" {
					t.Errorf("unexpected %q in the work dir", p)
				}
			}
			assertNothingOutside(t, base, work, sibling)
		})
	}
}

// The refusal of a link must hold even when a later entry would write
// through it.
func TestExtractSymlinkThenWriteThrough(t *testing.T) {
	base, work, sibling := workDirs(t)
	archive := tarGz(t,
		entry{name: "link", typ: tar.TypeSymlink, linkname: "../sibling"},
		file("link/evil", "x"),
	)
	if err := worker.Extract(bytes.NewReader(archive), work, 1<<20); err == nil {
		t.Fatal("Extract accepted a symlink")
	}
	assertNothingOutside(t, base, work, sibling)
}

func TestExtractSizeCap(t *testing.T) {
	tests := []struct {
		name    string
		files   []int // sizes
		max     int64
		wantErr bool
	}{
		{"under", []int{40, 50}, 100, false},
		{"exactly at the cap", []int{60, 40}, 100, false},
		{"one byte over", []int{60, 41}, 100, true},
		{"single file over", []int{101}, 100, true},
		{"zero cap, empty files", []int{0, 0}, 0, false},
		{"zero cap", []int{1}, 0, true},
		{"many small files", slices.Repeat([]int{10}, 11), 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, work, sibling := workDirs(t)
			var entries []entry
			for i, n := range tt.files {
				entries = append(entries, file("f"+strconv.Itoa(i), strings.Repeat("z", n)))
			}
			err := worker.Extract(bytes.NewReader(tarGz(t, entries...)), work, tt.max)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Extract ignored the size cap")
				}
				if !strings.Contains(err.Error(), "more than "+strconv.FormatInt(tt.max, 10)+" bytes") {
					t.Errorf("error = %q, want it to name the cap", err)
				}
			} else if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			// What was written never exceeds the cap.
			var total int64
			for _, p := range tree(t, work) {
				fi, err := os.Stat(filepath.Join(work, p))
				if err == nil && fi.Mode().IsRegular() {
					total += fi.Size()
				}
			}
			if total > tt.max {
				t.Errorf("%d bytes written, over the cap of %d", total, tt.max)
			}
			assertNothingOutside(t, base, work, sibling)
		})
	}
}

func TestExtractRefusesDuplicateFile(t *testing.T) {
	_, work, _ := workDirs(t)
	archive := tarGz(t, file("a.txt", "first"), file("./a.txt", "second"))
	err := worker.Extract(bytes.NewReader(archive), work, 1<<20)
	if err == nil {
		t.Fatal("Extract accepted a second entry overwriting a file")
	}
	if !strings.Contains(err.Error(), `"./a.txt"`) {
		t.Errorf("error %q does not name the entry", err)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "a.txt")); string(b) != "first" {
		t.Errorf("a.txt = %q, want the first entry's content", b)
	}
}

func TestExtractDoesNotFollowExistingSymlink(t *testing.T) {
	// A work dir that already holds a link (not from the archive) must not
	// let a regular file entry write through it: O_EXCL refuses the name.
	base, work, sibling := workDirs(t)
	if err := os.Symlink(filepath.Join(sibling, "target"), filepath.Join(work, "f.txt")); err != nil {
		t.Fatal(err)
	}
	err := worker.Extract(bytes.NewReader(tarGz(t, file("f.txt", "x"))), work, 1<<20)
	if err == nil {
		t.Error("Extract wrote a file entry over an existing symlink")
	}
	if got := tree(t, sibling); len(got) != 0 {
		t.Errorf("sibling = %q, want empty", got)
	}
	_ = base
}

func TestExtractCorruptInput(t *testing.T) {
	_, work, _ := workDirs(t)
	good := tarGz(t, file("a.txt", strings.Repeat("data ", 1000)))
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"not gzip", []byte("PK\x03\x04 a zip file"), "not gzip"},
		{"empty input", nil, "not gzip"},
		{"gzip of garbage", gzipBytes(t, bytes.Repeat([]byte("garbage!"), 200)), "read tar"},
		{"truncated", good[:len(good)/2], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := worker.Extract(bytes.NewReader(tt.input), t.TempDir(), 1<<20)
			if err == nil {
				t.Fatal("Extract accepted corrupt input")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	_ = work
}

func TestExtractTooManyEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100,001-entry archive")
	}
	entries := slices.Repeat([]entry{dir("./")}, 100_001)
	err := worker.Extract(bytes.NewReader(tarGz(t, entries...)), t.TempDir(), 1<<20)
	if err == nil || !strings.Contains(err.Error(), "more than 100000 entries") {
		t.Errorf("Extract = %v, want an entry-count error", err)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// git archive writes a pax global header first; it is metadata, not a file.
func TestExtractSkipsPaxGlobalHeader(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}}); err != nil {
		t.Fatal(err)
	}
	tw.WriteHeader(&tar.Header{Name: "f.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	gz.Close()
	dir := t.TempDir()
	if err := worker.Extract(&buf, dir, 1<<20); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "f.txt")); err != nil || string(data) != "hi" {
		t.Errorf("f.txt = %q, %v", data, err)
	}
}
