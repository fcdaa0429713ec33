package e2e

import (
	"archive/zip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// `make package` writes one zip per function holding an executable static
// bootstrap, which is what provided.al2023 runs: arm64 (Graviton) unless
// LAMBDA_ARCH says otherwise. The test builds for this machine's
// architecture, whose packages the emulated stacks have compiled with the
// same flags (a cold arm64 build of every dependency took over 5 minutes of
// a 2-core machine), and checks that the default is arm64 from the
// commands make would run.
func TestMakePackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the three functions")
	}
	dry := exec.Command("make", "-s", "-n", "package", "LAMBDA_OUT=out")
	dry.Dir = ".."
	if msg, err := dry.CombinedOutput(); err != nil || !strings.Contains(string(msg), "GOARCH=arm64") || !strings.Contains(string(msg), "CGO_ENABLED=0") {
		t.Errorf("make -n package: %v; want CGO_ENABLED=0 GOARCH=arm64 builds by default:\n%s", err, msg)
	}
	machine, ok := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if !ok {
		t.Skipf("no Lambda architecture for %s", runtime.GOARCH)
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "package", "LAMBDA_OUT="+out, "LAMBDA_ARCH="+runtime.GOARCH)
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
		if f.Machine != machine || f.Type != elf.ET_EXEC {
			t.Errorf("%s bootstrap: machine %v type %v, want a static %s executable", fn, f.Machine, f.Type, runtime.GOARCH)
		}
		if f.Section(".interp") != nil {
			t.Errorf("%s bootstrap is dynamically linked (CGO_ENABLED must be 0)", fn)
		}
		f.Close()
	}
}
