//go:build unix

package execx

import (
	"errors"
	"io"
	"os"
	"os/exec"
)

// streams feeds a command's inputs and takes its output through pipes of
// its own, copied here, so that neither a slow reader of the output nor a
// stalled input is cut off by os/exec's WaitDelay, and a failed input is
// known.
type streams struct {
	readers []io.Reader
	ends    []*os.File // the command's ends of every pipe, closed here once it started
	writers []*os.File // this side of the input pipes

	out    io.Writer
	outEnd *os.File // this side of the output pipe

	inErr  error // the first read error of an input
	outErr error // the write error of the output
}

func newStreams(cmd *exec.Cmd, stdin io.Reader, extra []io.Reader, stdout io.Writer) (*streams, error) {
	s := &streams{}
	input := func(r io.Reader) (*os.File, error) {
		end, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.readers, s.ends, s.writers = append(s.readers, r), append(s.ends, end), append(s.writers, w)
		return end, nil
	}
	if stdin != nil {
		end, err := input(stdin)
		if err != nil {
			s.closeAll()
			return nil, err
		}
		cmd.Stdin = end
	}
	for _, r := range extra {
		end, err := input(r)
		if err != nil {
			s.closeAll()
			return nil, err
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, end)
	}
	if stdout != nil {
		r, end, err := os.Pipe()
		if err != nil {
			s.closeAll()
			return nil, err
		}
		s.out, s.outEnd, s.ends = stdout, r, append(s.ends, end)
		cmd.Stdout = end
	}
	return s, nil
}

// run starts cmd, streams while it runs, waits for it, calls exited,
// and waits for the streams. An input the command stopped reading (it
// exited) is not an error of the input; a read error is, and it ends the
// command's input early.
func (s *streams) run(cmd *exec.Cmd, exited func()) error {
	if err := cmd.Start(); err != nil {
		s.closeAll()
		return err
	}
	for _, end := range s.ends {
		end.Close()
	}
	s.ends = nil
	in := make(chan error, len(s.readers))
	for i, r := range s.readers {
		go func() {
			_, err := io.Copy(readErrorOnly{s.writers[i]}, r)
			s.writers[i].Close()
			in <- err
		}()
	}
	out := make(chan error, 1)
	if s.outEnd != nil {
		go func() {
			_, err := io.Copy(s.out, s.outEnd)
			s.outEnd.Close()
			out <- err
		}()
	}
	err := cmd.Wait()
	exited()
	for i, w := range s.writers {
		w.Close() // unblocks a copy into a command that has exited
		if c, ok := s.readers[i].(io.Closer); ok {
			c.Close() // and a Read it is blocked in
		}
	}
	for range s.readers {
		if e := <-in; e != nil && !errors.Is(e, errWrite) && s.inErr == nil {
			s.inErr = e
		}
	}
	if s.outEnd != nil {
		s.outErr = <-out
	}
	return err
}

func (s *streams) closeAll() {
	for _, f := range append(s.ends, s.writers...) {
		f.Close()
	}
	if s.outEnd != nil {
		s.outEnd.Close()
	}
}

// errWrite marks a failed write into a command's pipe: the command
// stopped reading, which its exit status tells about.
var errWrite = errors.New("the command stopped reading")

type readErrorOnly struct{ w io.Writer }

func (r readErrorOnly) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		return n, errWrite
	}
	return n, nil
}
