package e2e

import (
	"archive/zip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// `make package` writes one zip per function holding an executable arm64
// bootstrap, which is what provided.al2023 on Graviton runs.
func TestMakePackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the three functions")
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "package", "LAMBDA_OUT="+out)
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, msg)
	}
	for _, fn := range []string{"orchestrator", "worker", "stitcher"} {
		zr, err := zip.OpenReader(filepath.Join(out, fn+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 {
			t.Errorf("%s.zip: want only an executable bootstrap, got %v", fn, zr.File)
		}
		rc, _ := zr.File[0].Open()
		tmp := filepath.Join(t.TempDir(), "bootstrap")
		data := make([]byte, zr.File[0].UncompressedSize64)
		if _, err := io.ReadFull(rc, data); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		zr.Close()
		os.WriteFile(tmp, data, 0o755)
		f, err := elf.Open(tmp)
		if err != nil {
			t.Fatalf("%s bootstrap is not ELF: %v", fn, err)
		}
		if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
			t.Errorf("%s bootstrap: machine %v type %v, want a static arm64 executable", fn, f.Machine, f.Type)
		}
		if f.Section(".interp") != nil {
			t.Errorf("%s bootstrap is dynamically linked (CGO_ENABLED must be 0)", fn)
		}
		f.Close()
	}
}
