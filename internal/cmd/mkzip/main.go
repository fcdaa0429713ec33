// Command mkzip writes a zip for Lambda: each argument NAME=PATH stores the
// file PATH as NAME, keeping its permission bits (a bootstrap must stay
// executable), with fixed timestamps so the same inputs make the same zip.
//
//	go run ./internal/cmd/mkzip -o build/lambda/worker.zip bootstrap=build/lambda/worker/bootstrap
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/helios-project/infrastructure/pkg/zipfile"
)

func main() {
	out := flag.String("o", "", "zip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkzip -o OUT.zip NAME=PATH...")
		os.Exit(2)
	}
	var entries []zipfile.Entry
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok || name == "" || path == "" {
			fmt.Fprintf(os.Stderr, "mkzip: argument %q: want NAME=PATH\n", arg)
			os.Exit(2)
		}
		entries = append(entries, zipfile.Entry{Name: name, Path: path})
	}
	if err := zipfile.Write(*out, entries); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}
