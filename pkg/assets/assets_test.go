package assets_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/assets"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/worker"
)

func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var composition = map[string]string{
	"canvas/index.html":                               "<!doctype html><script type=module src=composition.js></script>",
	"canvas/composition.js":                           "window.helios = {};",
	"node_modules/@helios-project/core/dist/index.js": "export {};",
}

// The worker unpacks what Pack writes, file for file.
func TestPackUnpacksInTheWorker(t *testing.T) {
	var buf bytes.Buffer
	if err := assets.Pack(tree(t, composition), &buf); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := worker.Extract(&buf, out, 1<<20); err != nil {
		t.Fatal(err)
	}
	for name, body := range composition {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil || string(got) != body {
			t.Errorf("%s: %q, %v; want %q", name, got, err, body)
		}
	}
}

// The same tree packs to the same bytes wherever it is and whenever its
// files were written: the key of the bundle is its content.
func TestPackIsReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if err := assets.Pack(tree(t, composition), &a); err != nil {
		t.Fatal(err)
	}
	if err := assets.Pack(tree(t, composition), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two packs of the same tree differ")
	}
}

func TestPackRefusesLinks(t *testing.T) {
	dir := tree(t, composition)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "canvas", "secret")); err != nil {
		t.Fatal(err)
	}
	err := assets.Pack(dir, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "only files and directories") {
		t.Fatalf("Pack with a symlink: %v; want an error naming it", err)
	}
}

func TestUploadIsContentAddressedAndIdempotent(t *testing.T) {
	b := testkit.Bucket(t, t.TempDir())
	dir := tree(t, composition)
	key, err := assets.Upload(t.Context(), b, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := layout.AssetDigest(key); !ok {
		t.Fatalf("key %q is not assets/<sha256>.tar.gz", key)
	}
	if k, err := assets.Key(dir); err != nil || k != key {
		t.Errorf("Key = %q, %v; want Upload's %q", k, err, key)
	}
	other := tree(t, map[string]string{"canvas/index.html": "<!doctype html>changed"})
	if k, _ := assets.Key(other); k == key {
		t.Error("two different trees have the same key")
	}
	again, err := assets.Upload(t.Context(), b, dir)
	if err != nil || again != key {
		t.Fatalf("second upload: %q, %v; want %q and no error", again, err, key)
	}
	if _, err := assets.Upload(t.Context(), b, filepath.Join(dir, "canvas", "index.html")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Upload of a file: %v; want an error saying it is not a directory", err)
	}
}
