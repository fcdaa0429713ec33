// Package zipfile writes the zips Lambda takes (function code, layers):
// entries keep their permission bits, every timestamp is fixed so the same
// inputs make the same bytes (and the same CDK asset hash), and the file
// appears under its name only once complete.
package zipfile

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Entry stores the file at Path as Name with Mode.
type Entry struct {
	Name string
	Path string
	Mode fs.FileMode // 0: the file's own permission bits
}

// epoch is the earliest date a zip can hold.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Write creates out from entries.
func Write(out string, entries []Entry) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	err = addAll(zw, entries)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

func addAll(zw *zip.Writer, entries []Entry) error {
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Name == "" || path.IsAbs(e.Name) || strings.Contains(e.Name, "..") || path.Clean(e.Name) != e.Name {
			return fmt.Errorf("entry name %q must be a clean relative path", e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("entry %q given twice", e.Name)
		}
		seen[e.Name] = true
		if err := add(zw, e); err != nil {
			return err
		}
	}
	return nil
}

func add(zw *zip.Writer, e Entry) error {
	info, err := os.Stat(e.Path) // follows links: store the binary, not the link
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", e.Path)
	}
	mode := e.Mode
	if mode == 0 {
		mode = info.Mode().Perm()
	}
	hdr := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: epoch}
	hdr.SetMode(mode)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	r, err := os.Open(e.Path)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}
