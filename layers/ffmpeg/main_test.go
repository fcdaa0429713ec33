package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The offline path: the machine's own binaries become bin/ffmpeg and
// bin/ffprobe, executable, and nothing else.
func TestLayerFromLocalBinaries(t *testing.T) {
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		t.Fatal("ffmpeg and ffprobe must be installed (make test installs them)")
	}
	out := filepath.Join(t.TempDir(), "build", "ffmpeg-layer.zip")
	if err := build(t.Context(), "arm64", out, ffmpeg, ffprobe); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Mode().Perm() != 0o755 || !f.Mode().IsRegular() {
			t.Errorf("%s has mode %v, want -rwxr-xr-x", f.Name, f.Mode())
		}
	}
	if strings.Join(names, ",") != "bin/ffmpeg,bin/ffprobe" {
		t.Errorf("layer holds %v, want bin/ffmpeg and bin/ffprobe (Lambda puts them in /opt/bin)", names)
	}
	want, _ := os.ReadFile(ffprobe)
	r, _ := zr.File[1].Open()
	var got bytes.Buffer
	got.ReadFrom(r)
	r.Close()
	if !bytes.Equal(got.Bytes(), want) {
		t.Error("bin/ffprobe is not the given binary")
	}
}

func TestLayerRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "ffmpeg")
	os.WriteFile(notExec, []byte("x"), 0o644)
	tests := map[string]struct {
		arch, ffmpeg, ffprobe, want string
	}{
		"missing binary": {"arm64", filepath.Join(dir, "nope"), notExec, "no such file"},
		"not executable": {"arm64", notExec, notExec, "not an executable"},
		"only one given": {"arm64", notExec, "", "set both FFMPEG_BIN and FFPROBE_BIN"},
		"unknown arch":   {"riscv64", "", "", `architecture "riscv64"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".zip")
			err := build(t.Context(), tt.arch, out, tt.ffmpeg, tt.ffprobe)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Error("a zip was written despite the error")
			}
		})
	}
}

func tarball(t *testing.T, member string, data []byte) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: member, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	gz.Close()
	path := filepath.Join(t.TempDir(), "pkg.tgz")
	os.WriteFile(path, buf.Bytes(), 0o644)
	sum := sha256.Sum256(buf.Bytes())
	return path, hex.EncodeToString(sum[:])
}

func TestChecksumIsVerified(t *testing.T) {
	path, sum := tarball(t, "package/ffmpeg", []byte("\x7fELF static ffmpeg"))
	out, err := extractVerified(path, sum, "package/ffmpeg", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(out); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("extracted binary: %v %v", info, err)
	}
	wrong := strings.Repeat("0", 64)
	_, err = extractVerified(path, wrong, "package/ffmpeg", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), sum) {
		t.Fatalf("a wrong checksum: err = %v, want a mismatch naming both digests", err)
	}
	if _, err := extractVerified(path, sum, "package/ffprobe", t.TempDir()); err == nil {
		t.Error("a tarball without the binary was accepted")
	}
}

// The default path: the pinned packages from the npm registry match their
// pinned digests and hold static binaries for their architecture. (Zipping
// is covered above; compressing 80 MB under the race detector is slow.)
func TestPinnedBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads ~40 MB with npm pack")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm is needed to fetch the pinned builds")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		path, err := fetch(t.Context(), builds["arm64"][tool], t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 20)
		f.Read(head)
		f.Close()
		// ELF magic, and e_machine 0xB7 (AArch64) at offset 18.
		if string(head[:4]) != "\x7fELF" || head[18] != 0xB7 {
			t.Errorf("%s is not an arm64 ELF binary", tool)
		}
		if info, _ := os.Stat(path); info.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable", tool)
		}
	}
}
