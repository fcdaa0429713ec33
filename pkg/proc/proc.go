// Package proc reads what the Linux /proc file system says of processes.
package proc

import (
	"os"
	"strconv"
	"strings"
)

// Children lists the processes whose parent is pid.
func Children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := Parent(child); ok && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// Parent returns the parent of pid, if pid exists.
func Parent(pid int) (int, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// TreeRSS is the resident memory, in bytes, of pid and every process below
// it: what a render (Node, Chromium's processes, ffmpeg) holds at once.
func TreeRSS(pid int) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	children := map[int][]int{}
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			if ppid, ok := Parent(p); ok {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	var total int64
	for pending := []int{pid}; len(pending) > 0; {
		p := pending[len(pending)-1]
		pending = append(pending[:len(pending)-1], children[p]...)
		statm, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/statm")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(statm)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			total += pages * int64(os.Getpagesize())
		}
	}
	return total
}
