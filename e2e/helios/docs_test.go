package helios

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
)

// The first composition of docs/HELIOS.md, as a newcomer would make it
// from the docs alone: its page and spec are the page's blocks, its node_modules
// what `npm install @helios-project/core@5.13.2` gives (the examples' own
// install, here without the network), and its command line the page's,
// with this CLI before the renderer on PATH.
// The job is done in 4 chunks, and the frames follow the page: the first
// and the last differ.
func TestDocsFirstComposition(t *testing.T) {
	r := need(t)
	readme, err := os.ReadFile(filepath.Join(root, "docs", "HELIOS.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)<!-- first-composition: (\\S+) -->\n```[a-z]*\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		blocks[m[1]] = m[2]
	}
	run, ok := blocks["run"]
	if !ok || blocks["my-video/index.html"] == "" || blocks["my-video.json"] == "" {
		t.Fatalf("docs/HELIOS.md's first composition is not all there: %v", keys(blocks))
	}
	dir := t.TempDir()
	for _, name := range []string{"my-video/index.html", "my-video.json"} {
		path := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(blocks[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	core := filepath.Join(compositions, "node_modules", "@helios-project", "core")
	if err := os.CopyFS(filepath.Join(dir, "my-video", "node_modules", "@helios-project", "core"), os.DirFS(core)); err != nil {
		t.Fatalf("the npm install stand-in: %v (make renderer installs the examples' packages)", err)
	}
	args := strings.Fields(strings.TrimSpace(run))
	if len(args) < 2 || args[0] != "bin/helios" {
		t.Fatalf("the page's command: %q", run)
	}
	for i, a := range args {
		if strings.HasPrefix(a, "my-video") {
			args[i] = filepath.Join(dir, a)
		}
	}
	// This CLI first on PATH, as bin/helios is for a user who put bin/ there:
	// the chunks still run the renderer's helios, never the CLI itself.
	own := t.TempDir()
	if err := os.Symlink(cli, filepath.Join(own, "helios")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(own, "helios"), append(args[1:], "--storage", t.TempDir())...)
	cmd.Env = append(os.Environ(), "PATH="+own+string(os.PathListSeparator)+r.Bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HELIOS_ALLOWED_COMMANDS=ffmpeg,helios", "HELIOS_STORAGE_URL=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	stdout, stderr := o.String(), e.String()
	if err != nil || !strings.Contains(stdout, "chunks:    4") {
		t.Fatalf("the page's command: %v\n%s%s", err, stdout, stderr)
	}
	out := filepath.Join(dir, "my-video.mp4")
	frames := testkit.FrameMD5(t, out)
	if len(frames) != 60 || frames[0] == frames[59] {
		t.Errorf("%d frames (want 60), first and last the same: %v", len(frames), len(frames) > 0 && frames[0] == frames[len(frames)-1])
	}
}

func keys(m map[string]string) []string { // for the message
	var k []string
	for name := range m {
		k = append(k, name)
	}
	return k
}
