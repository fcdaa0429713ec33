package job_test

import (
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
)

// The findings of the security review: a spec could make the allowed
// ffmpeg load native code, or point it at a library through the
// environment. Each is refused before anything runs.
func TestCodeLoadingRefused(t *testing.T) {
	args := func(extra ...string) func(*job.Spec) {
		return func(s *job.Spec) { s.Args = append(extra, s.Args...) }
	}
	env := func(k string) func(*job.Spec) {
		return func(s *job.Spec) { s.Env = map[string]string{k: "/tmp/x"} }
	}
	helios := func(cmd string) func(*job.Spec) {
		return func(s *job.Spec) { s.Chunks[0].Command = cmd + " -y {output}" }
	}
	cases := []struct {
		name   string
		spec   func() *job.Spec
		mutate func(*job.Spec)
		path   string
		want   string
	}{
		{"ladspa audio filter", nativeSpec, args("-af", "ladspa=file=./evil.so:plugin=x"), "args[1]", "ladspa filter loads native code"},
		{"lv2 in a complex graph", nativeSpec, args("-filter_complex", "[0:a]lv2=p=urn:x[a]"), "args[1]", "lv2 filter"},
		{"frei0r video filter", nativeSpec, args("-vf", "scale=2:2,frei0r=filter_name=./x.so"), "args[1]", "frei0r filter"},
		{"frei0r source via lavfi", nativeSpec, args("-f", "lavfi", "-i", "frei0r_src=size=8x8:filter_name=x"), "args[3]", "frei0r_src filter"},
		{"quoted name", nativeSpec, args("-af", "'lad''spa'=file=x"), "args[1]", "ladspa filter"},
		{"escaped name", nativeSpec, args("-af", `lad\spa=file=x`), "args[1]", "ladspa filter"},
		{"upper case", nativeSpec, args("-af", "LADSPA=file=x"), "args[1]", "ladspa filter"},
		{"named instance", nativeSpec, args("-af", "ladspa@a=file=x"), "args[1]", "ladspa filter"},
		{"graph from a file", nativeSpec, args("-filter_script:v", "graph.txt"), "args[0]", "reads a filtergraph from a file"},
		{"complex graph from a file", nativeSpec, args("-filter_complex_script", "graph.txt"), "args[0]", "reads a filtergraph from a file"},
		{"option from a file", nativeSpec, args("-/af", "graph.txt"), "args[0]", "read from a file"},
		{"helios-form chunk", heliosSpec, helios("ffmpeg -af ladspa=file=x"), "chunks[", "ladspa filter"},
		{"LADSPA_PATH", nativeSpec, env("LADSPA_PATH"), "env.LADSPA_PATH", "may not be set by a job"},
		{"FREI0R_PATH", nativeSpec, env("FREI0R_PATH"), "env.FREI0R_PATH", "may not be set by a job"},
		{"LV2_PATH", nativeSpec, env("LV2_PATH"), "env.LV2_PATH", "may not be set by a job"},
		{"VK_ICD_FILENAMES", nativeSpec, env("VK_ICD_FILENAMES"), "env.VK_ICD_FILENAMES", "may not be set by a job"},
		{"OPENSSL_CONF", nativeSpec, env("OPENSSL_CONF"), "env.OPENSSL_CONF", "may not be set by a job"},
		{"LIBVA_DRIVERS_PATH", nativeSpec, env("LIBVA_DRIVERS_PATH"), "env.LIBVA_DRIVERS_PATH", "may not be set by a job"},
		{"FFREPORT", nativeSpec, env("FFREPORT"), "env.FFREPORT", "may not be set by a job"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec()
			c.mutate(s)
			s.Normalize()
			problems := problemsOf(t, s.Validate(testAllow))
			for _, p := range problems {
				if strings.HasPrefix(p.Path, c.path) && strings.Contains(p.Message, c.want) {
					return
				}
			}
			t.Errorf("problems %v; want one at %s saying %q", problems, c.path, c.want)
		})
	}
}

// Words that merely contain a filter's name are fine.
func TestCodeLoadingNotOverEager(t *testing.T) {
	s := nativeSpec()
	s.Args = append([]string{"-metadata", "title=clv2 ladspan frei0rx", "-vf", "scale=2:2"}, s.Args...)
	s.Normalize()
	if err := s.Validate(testAllow); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
