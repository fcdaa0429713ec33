package fmp4

import (
	"fmt"
	"io"
)

// Join writes a joined file to dst: init (the first chunk's Placed.Init),
// then every chunk's placed fragments, in timeline order. It is a plain
// concatenation, streamed: Place did the rewriting, and Compatible must
// have accepted every chunk's init against the first.
func Join(dst io.Writer, init io.Reader, chunks ...io.Reader) (int64, error) {
	total, err := io.Copy(dst, init)
	if err != nil {
		return total, fmt.Errorf("fmp4: join: init: %w", err)
	}
	for i, c := range chunks {
		n, err := io.Copy(dst, c)
		total += n
		if err != nil {
			return total, fmt.Errorf("fmp4: join: chunk %d (from 0) of %d: %w", i, len(chunks), err)
		}
	}
	return total, nil
}
