package zipfile

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bootstrap")
	os.WriteFile(exe, []byte("#!binary"), 0o755)
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte("data"), 0o600)
	out := filepath.Join(dir, "a.zip")
	if err := Write(out, []Entry{{Name: "bootstrap", Path: exe}, {Name: "bin/data", Path: data, Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if m := zr.File[0].Mode().Perm(); m != 0o755 {
		t.Errorf("bootstrap mode %v, want 0755 (kept from the file)", m)
	}
	if m := zr.File[1].Mode().Perm(); m != 0o644 {
		t.Errorf("bin/data mode %v, want 0644 (given)", m)
	}
	// Same inputs, same bytes, whatever the files' own timestamps.
	first, _ := os.ReadFile(out)
	os.Chtimes(exe, epoch.AddDate(40, 0, 0), epoch.AddDate(40, 0, 0))
	if err := Write(out, []Entry{{Name: "bootstrap", Path: exe}, {Name: "bin/data", Path: data, Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(out); !bytes.Equal(first, second) {
		t.Error("the zip changed with the input's modification time")
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	for name, entries := range map[string][]Entry{
		"traversal":    {{Name: "../x", Path: f}},
		"absolute":     {{Name: "/x", Path: f}},
		"unclean":      {{Name: "a//b", Path: f}},
		"duplicate":    {{Name: "x", Path: f}, {Name: "x", Path: f}},
		"missing file": {{Name: "x", Path: filepath.Join(dir, "nope")}},
		"a directory":  {{Name: "x", Path: dir}},
	} {
		out := filepath.Join(dir, name+".zip")
		if err := Write(out, entries); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a partial zip was left", name)
		}
	}
}
