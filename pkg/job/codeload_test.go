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
		{"ladspa audio filter", nativeSpec, args("-af", "ladspa=file=./evil.so:plugin=x"), "args[1]", "filter ladspa loads native code"},
		{"lv2 in a complex graph", nativeSpec, args("-filter_complex", "[0:a]lv2=p=urn:x[a]"), "args[1]", "filter lv2"},
		{"frei0r video filter", nativeSpec, args("-vf", "scale=2:2,frei0r=filter_name=./x.so"), "args[1]", "filter frei0r"},
		{"frei0r source via lavfi", nativeSpec, args("-f", "lavfi", "-i", "frei0r_src=size=8x8:filter_name=x"), "args[3]", "filter frei0r_src"},
		{"quoted name", nativeSpec, args("-af", "'lad''spa'=file=x"), "args[1]", "filter ladspa"},
		{"escaped name", nativeSpec, args("-af", `lad\spa=file=x`), "args[1]", "filter ladspa"},
		{"upper case", nativeSpec, args("-af", "LADSPA=file=x"), "args[1]", "filter LADSPA loads native code"},
		{"named instance", nativeSpec, args("-af", "ladspa@a=file=x"), "args[1]", "filter ladspa"},
		{"graph from a file", nativeSpec, args("-filter_script:v", "graph.txt"), "args[0]", "reads a filtergraph from a file"},
		{"complex graph from a file", nativeSpec, args("-filter_complex_script", "graph.txt"), "args[0]", "reads a filtergraph from a file"},
		{"option from a file", nativeSpec, args("-/af", "graph.txt"), "args[0]", "reads its value from a file"},
		{"helios-form chunk", heliosSpec, helios("ffmpeg -af ladspa=file=x"), "chunks[", "filter ladspa"},
		// The audit of 2026-12 (issue 21): code from the bundle through
		// ffmpeg, four ways, and their neighbours.
		{"lavfi graph from a file", nativeSpec, args("-f", "lavfi", "-graph_file", "g.txt", "-i", "dummy"), "args[2]", "reads a filtergraph from a file"},
		{"movie with nested options", nativeSpec, args("-i", "movie=dummy:f=lavfi:format_opts=graph_file=g.txt"), "args[1]", "names a protocol or device"},
		{"movie in a lavfi input", nativeSpec, args("-f", "lavfi", "-i", "movie=dummy:f=lavfi:format_opts=graph_file=g.txt"), "args[3]", "filter movie opens another input"},
		{"vulkan device", nativeSpec, args("-init_hw_device", "vulkan"), "args[0]", "opens a hardware device"},
		{"vaapi device", nativeSpec, args("-init_hw_device", "vaapi=va:/dev/dri/renderD128"), "args[0]", "opens a hardware device"},
		{"hwaccel", nativeSpec, args("-hwaccel", "vulkan", "-i", "in.mp4"), "args[0]", "decodes on a hardware device"},
		{"filter device", nativeSpec, args("-filter_hw_device", "gpu"), "args[0]", "hands filters a hardware device"},
		{"libplacebo", nativeSpec, args("-vf", "libplacebo=w=8:h=8"), "args[1]", "filter libplacebo runs on a hardware device"},
		{"a vulkan filter", nativeSpec, args("-vf", "scale_vulkan=8:8"), "args[1]", "filter scale_vulkan runs on a hardware device"},
		{"a hardware encoder", nativeSpec, args("-c:v", "h264_vaapi"), "args[1]", "runs on a hardware device"},
		{"attachment dump", nativeSpec, args("-dump_attachment:t", "x.so", "-i", "in.mkv"), "args[0]", "writes attachments"},
		{"a protocol input", nativeSpec, args("-i", "http://example.com/x.mp4"), "args[1]", "names a protocol"},
		{"an input outside", nativeSpec, args("-i", "/etc/passwd"), "args[1]", "must be a file of the work dir"},
		{"concat demuxer", nativeSpec, args("-f", "concat", "-safe", "0", "-i", "list.txt"), "args[2]", "lets the concat demuxer open any path"},
		{"a font outside", nativeSpec, args("-vf", "drawtext=fontfile=/proc/self/environ:text=x"), "args[1]", "fontfile"},
		{"an unknown option", nativeSpec, args("-vulkan_params", "x"), "args[0]", "not an ffmpeg option this deployment allows"},
		{"XDG_DATA_DIRS", nativeSpec, env("XDG_DATA_DIRS"), "env.XDG_DATA_DIRS", "may not be set by a job"},
		{"XDG_DATA_HOME", nativeSpec, env("XDG_DATA_HOME"), "env.XDG_DATA_HOME", "may not be set by a job"},
		{"OCL_ICD_VENDORS", nativeSpec, env("OCL_ICD_VENDORS"), "env.OCL_ICD_VENDORS", "may not be set by a job"},
		{"a locale from a path", nativeSpec, func(s *job.Spec) { s.Env = map[string]string{"LANG": "../locale"} }, "env.LANG", "not a path"},
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
