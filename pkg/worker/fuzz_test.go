package worker_test

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/worker"
)

// FuzzExtract unpacks arbitrary bundles: whatever the bytes, nothing is
// written outside the target dir, nothing but files and directories is
// created, and nothing panics.
func FuzzExtract(f *testing.F) {
	f.Add(tarGz(f, dir("comp/"), file("comp/index.html", "<html>")))
	f.Add(tarGz(f, file("../escape", "x")))
	f.Add(tarGz(f, file("/abs", "x")))
	f.Add(tarGz(f, entry{name: "l", typ: tar.TypeSymlink, linkname: "/etc/passwd"}))
	f.Add(tarGz(f, file("a/../../b", "x")))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		work := filepath.Join(root, "work")
		os.Mkdir(work, 0o700)
		_ = worker.Extract(bytes.NewReader(data), work, 1<<20)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && p != work && !strings.HasPrefix(p, work+string(filepath.Separator)) {
				t.Fatalf("%s written outside the work dir", p)
			}
			if d.Type()&^fs.ModeDir != 0 {
				t.Fatalf("%s is a %s", p, d.Type())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
