package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"gocloud.dev/blob"
)

// concatFile joins the files of a local folder. Each source is opened
// through fileblob, which hands over its *os.File, and copied into a temp
// file beside dst with io.Copy from file to file: copy_file_range on
// Linux, so the bytes stay in the kernel (and on a filesystem with
// reflinks are not copied at all). A hard link then publishes the temp file
// as dst; it fails if dst exists, whichever process made it (fileblob's
// IfNotExist checks and renames, exclusive within one process only).
func concatFile(ctx context.Context, b *blob.Bucket, dst string, srcs []string, stats *ConcatStats, calls *atomic.Int64) error {
	var dstPath string
	var tmp *os.File
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	for i, src := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		calls.Add(1)
		var f *os.File
		r, err := b.NewReader(ctx, src, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
			if !as(&f) {
				return errors.New("fileblob did not give its *os.File")
			}
			return nil
		}})
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		if i == 0 {
			if dstPath, err = pathBeside(f.Name(), src, dst); err == nil {
				tmp, err = createTemp(dstPath)
			}
			if err != nil {
				r.Close()
				return err
			}
		}
		n, err := io.Copy(tmp, f)
		r.Close()
		stats.BytesCopiedServerSide += n
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := publishFile(tmp.Name(), dstPath); err != nil {
		return err
	}
	stats.Bytes = stats.BytesCopiedServerSide
	return nil
}

// pathBeside is the path of key given the path of another key, srcPath of
// src: fileblob keeps a key at <folder>/<key> (verbatim keys, see
// storedVerbatim).
func pathBeside(srcPath, src, key string) (string, error) {
	root, err := keyPrefix(srcPath, filepath.FromSlash(src))
	if err != nil {
		return "", err
	}
	return root + filepath.FromSlash(key), nil
}

// createTemp creates a temp file beside path, readable as fileblob's files
// are (0666 less the umask).
func createTemp(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return nil, err
	}
	return os.OpenFile(newTempNames(path).name(0), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
}

// publishFile gives the complete file at tmp the name path, only if path
// does not exist.
func publishFile(tmp, path string) error {
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return ErrExists
	case errors.Is(err, errors.ErrUnsupported) || errors.Is(err, fs.ErrPermission):
		// No hard links on this filesystem (FAT, some FUSE mounts): check
		// and rename, which a writer racing between the two can lose to.
		if _, err := os.Lstat(path); err == nil {
			return ErrExists
		}
		return os.Rename(tmp, path)
	default:
		return err
	}
}
