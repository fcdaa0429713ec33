// Package assets builds the bundles that a job's chunks unpack into their
// work dirs (a spec's "assets": assets/<sha256>.tar.gz): a composition, its
// scripts, fonts and audio.
package assets

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Pack writes the tree under dir as a tar.gz of the kind the worker
// unpacks: regular files and directories only (a link is an error naming
// it), in lexical order, without owners or times, so that the same tree
// packs to the same bytes and so to the same key.
func Pack(dir string, w io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
			if info.Mode()&0o111 != 0 {
				hdr.Mode = 0o755
			}
		default:
			return fmt.Errorf("%s is a %s; an asset bundle holds only files and directories (copy what it points to)", filepath.Join(dir, name), info.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if n, err := io.Copy(tw, f); err != nil {
			return err
		} else if n != hdr.Size {
			return fmt.Errorf("%s changed while it was packed", filepath.Join(dir, name))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Key is the key Upload would store dir at, without storing anything; its
// error says what in the tree cannot be packed.
func Key(dir string) (string, error) {
	if err := isDir(dir); err != nil {
		return "", err
	}
	sum := sha256.New()
	if err := Pack(dir, sum); err != nil {
		return "", fmt.Errorf("pack %s: %w", dir, err)
	}
	return keyOf(sum.Sum(nil)), nil
}

func isDir(dir string) error {
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: the assets are a folder to pack", dir)
	}
	return nil
}

func keyOf(sum []byte) string { return layout.AssetsPrefix + hex.EncodeToString(sum) + ".tar.gz" }

// Bundle is a folder packed once: the tar.gz in a temporary file, and the
// key it is stored at. Close removes the file.
type Bundle struct {
	Key  string
	path string
}

// Open packs dir into a Bundle; its error says what in the tree cannot be
// packed.
func Open(dir string) (*Bundle, error) {
	if err := isDir(dir); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "helios-assets-*.tar.gz")
	if err != nil {
		return nil, err
	}
	sum := sha256.New()
	err = Pack(dir, io.MultiWriter(tmp, sum))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return &Bundle{Key: keyOf(sum.Sum(nil)), path: tmp.Name()}, nil
}

// Upload stores the bundle at its content address, assets/<sha256>.tar.gz,
// unless a bundle is already there (the same bytes, by its name).
func (bd *Bundle) Upload(ctx context.Context, b *blob.Bucket) error {
	if _, err := storage.UploadFileOnce(ctx, b, bd.path, bd.Key); err != nil && !errors.Is(err, storage.ErrExists) {
		return err
	}
	return nil
}

// Close removes the packed file.
func (bd *Bundle) Close() error { return os.Remove(bd.path) }

// Upload packs dir and stores it (Bundle.Upload); it returns the key for
// the spec's "assets".
func Upload(ctx context.Context, b *blob.Bucket, dir string) (string, error) {
	bd, err := Open(dir)
	if err != nil {
		return "", err
	}
	defer bd.Close()
	return bd.Key, bd.Upload(ctx, b)
}
