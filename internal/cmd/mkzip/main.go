// Command mkzip writes a zip for Lambda: each argument NAME=PATH stores the
// file PATH as NAME, keeping its permission bits (a bootstrap or a layer's
// bin/ffmpeg must stay executable), with a fixed timestamp so the same
// inputs make the same zip (and the same CDK asset hash).
//
//	go run ./internal/cmd/mkzip -o build/lambda/worker.zip bootstrap=build/lambda/worker/bootstrap
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", "", "zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkzip -o OUT.zip NAME=PATH...")
		os.Exit(2)
	}
	if err := write(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

// epoch is the timestamp of every entry (zip cannot store earlier dates).
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func write(out string, entries []string) error {
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

func addAll(zw *zip.Writer, entries []string) error {
	seen := map[string]bool{}
	for _, e := range entries {
		name, src, ok := strings.Cut(e, "=")
		if !ok || name == "" || src == "" {
			return fmt.Errorf("argument %q: want NAME=PATH", e)
		}
		if path.IsAbs(name) || strings.Contains(name, "..") || path.Clean(name) != name {
			return fmt.Errorf("entry name %q must be a clean relative path", name)
		}
		if seen[name] {
			return fmt.Errorf("entry %q given twice", name)
		}
		seen[name] = true
		if err := add(zw, name, src); err != nil {
			return err
		}
	}
	return nil
}

func add(zw *zip.Writer, name, src string) error {
	info, err := os.Stat(src) // follows links: store the binary, not the link
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return errors.New(src + " is not a regular file")
	}
	hdr, err := zip.FileInfoHeader(info)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method, hdr.Modified = name, zip.Deflate, epoch
	hdr.SetMode(info.Mode().Perm())
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}
