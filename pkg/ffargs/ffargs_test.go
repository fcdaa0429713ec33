package ffargs_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/ffargs"
)

func TestParseGraph(t *testing.T) {
	for _, tc := range []struct {
		graph string
		names []string
		args  []string
	}{
		{"scale=320:240,setsar=1", []string{"scale", "setsar"}, []string{"320:240", "1"}},
		{"[0:v]trim=start_frame=3:end_frame=9,setpts=PTS-STARTPTS[v];[0:a]anull[a]", []string{"trim", "setpts", "anull"}, nil},
		{"'lad''spa'=file=x", []string{"ladspa"}, []string{"file=x"}},
		{`lad\spa=file=x`, []string{"ladspa"}, nil},
		{"ladspa@one=file=x", []string{"ladspa"}, nil},
		{"sws_flags=bicubic;[in]scale=2:2[out]", []string{"scale"}, nil},
		{"drawtext=text='a\\, b':fontsize=9, null", []string{"drawtext", "null"}, []string{`text=a\, b:fontsize=9`, ""}},
		{"  testsrc2 = size=16x16 : rate=10 ", []string{"testsrc2"}, nil},
		{"split[a][b];[a][b]hstack", []string{"split", "hstack"}, nil},
	} {
		filters, err := ffargs.ParseGraph(tc.graph)
		if err != nil {
			t.Errorf("%q: %v", tc.graph, err)
			continue
		}
		var names, args []string
		for _, f := range filters {
			names, args = append(names, f.Name), append(args, f.Args)
		}
		if !slices.Equal(names, tc.names) || (tc.args != nil && !slices.Equal(args, tc.args)) {
			t.Errorf("%q: names %q args %q; want %q %q", tc.graph, names, args, tc.names, tc.args)
		}
	}
	for _, bad := range []string{"", "scale,", "[in", "=x", "scale;;null", "scale junk[x] y"} {
		if _, err := ffargs.ParseGraph(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// What the job formats, the examples, the tests and the README use is
// accepted.
func TestCheckAccepts(t *testing.T) {
	for _, line := range []string{
		"-hide_banner -nostdin -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -vf trim=start_frame=0:end_frame=60,setpts=PTS-STARTPTS -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p -movflags +frag_keyframe+empty_moov+default_base_moof -an -y chunk.mp4",
		"-hide_banner -nostdin -loglevel error -f lavfi -i testsrc2=size=160x120:rate=10 -f lavfi -i sine=frequency=440:sample_rate=48000 -filter_complex [0:v]trim=start_frame=0:end_frame=10[v];[1:a]atrim=start_sample=0:end_sample=48000[a] -map [v] -map [a] -c:v libx264 -qp 0 -c:a pcm_s16le -y chunk.mov",
		"-y -i in/clip.mp4 -ss 1.5 -t 2 -c:v libvpx-vp9 -b:v 0 -crf 30 -deadline realtime -cpu-used 8 -row-mt 1 -an chunk.webm",
		"-framerate 30 -i frames/%04d.png -c:v prores_ks -profile:v 3 -vendor apl0 -pix_fmt yuv422p10le chunk.mov",
		"-f image2pipe -c:v png -framerate 30000/1001 -i pipe:0 -map 0:v -vf scale=320:240 -c:v libx264 -crf 0 -preset ultrafast -an -f mov part.mov",
		"-i a.wav -af aresample=48000,pan=stereo|c0=c0|c1=c0,volume=0.5 -c:a flac -f matroska chunk.mkv",
		"-i in.mp4 -vf drawtext=fontfile=fonts/Inter.ttf:text='frame%{n}':x=10:y=10 -c:v libx264 out.mp4",
		"-i in.mp4 -vf subtitles=captions.srt -noautorotate -map_metadata -1 -metadata title=x -f null -",
		"-f lavfi -i color=c=black:s=16x16:d=1 -frames:v 1 -f framemd5 -",
	} {
		if p := ffargs.Check(strings.Fields(line), ffargs.Extra{}); len(p) > 0 {
			t.Errorf("%s\n  refused: %v", line, p)
		}
	}
}

// The audit's routes to code from the bundle, their neighbours and the
// rest of what is refused; each names the argument.
func TestCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		line  string
		index int
		want  string
	}{
		{"-f lavfi -graph_file g.txt -i dummy out.mp4", 2, "-graph_file is not allowed: it reads a filtergraph from a file"},
		{"-i movie=dummy:f=lavfi:format_opts=graph_file=g.txt out.mp4", 1, "names a protocol or device"},
		{"-f lavfi -i movie=dummy:f=lavfi:format_opts=graph_file=g.txt out.mp4", 3, "filter movie opens another input"},
		{"-filter_complex amovie=x.wav[a] -map [a] out.wav", 1, "filter amovie"},
		{"-init_hw_device vulkan -i in.mp4 out.mp4", 0, "opens a hardware device"},
		{"-init_hw_device opencl -i in.mp4 out.mp4", 0, "opens a hardware device"},
		{"-hwaccel vulkan -i in.mp4 out.mp4", 0, "decodes on a hardware device"},
		{"-hwaccel_output_format vaapi -i in.mp4 out.mp4", 0, "hardware device"},
		{"-filter_hw_device gpu -i in.mp4 out.mp4", 0, "hands filters a hardware device"},
		{"-i in.mp4 -vf libplacebo=w=8:h=8 out.mp4", 3, "filter libplacebo runs on a hardware device"},
		{"-i in.mp4 -vf hwupload,scale_vaapi=8:8 out.mp4", 3, "filter hwupload"},
		{"-i in.mp4 -vf format=nv12,avgblur_opencl out.mp4", 3, "filter avgblur_opencl runs on a hardware device"},
		{"-i in.mp4 -af ladspa=file=./evil.so:p=x out.mp4", 3, "filter ladspa loads native code"},
		{"-i in.mp4 -af 'lad''spa'=file=x out.mp4", 3, "filter ladspa loads native code"},
		{"-i in.mp4 -vf sendcmd=f=cmds.txt,scale=2:2 out.mp4", 3, "filter sendcmd reads commands from a file"},
		{"-i in.mp4 -vf zmq out.mp4", 3, "filter zmq takes commands from the network"},
		{"-i in.mp4 -vf dnn_processing=model=m.pb out.mp4", 3, "loads a model"},
		{"-filter_script:v g.txt -i in.mp4 out.mp4", 0, "reads a filtergraph from a file"},
		{"-/vf g.txt -i in.mp4 out.mp4", 0, "reads its value from a file"},
		{"-dump_attachment:t x.so -i in.mkv out.mp4", 0, "writes attachments"},
		{"-attach evil.so -i in.mkv out.mkv", 0, "attaches a file"},
		{"-i in.mp4 -c:v h264_vaapi out.mp4", 3, "runs on a hardware device"},
		{"-i in.mp4 -c:v hevc_vulkan out.mp4", 3, "runs on a hardware device"},
		{"-protocol_whitelist file,http -i in.mp4 out.mp4", 0, "opens protocols"},
		{"-f concat -safe 0 -i list.txt out.mp4", 2, "lets the concat demuxer open any path"},
		{"-f concat -i list.txt out.mp4", 1, "format \"concat\" is not one a job may read or write"},
		{"-i http://169.254.169.254/latest out.mp4", 1, "names a protocol"},
		{"-i /etc/passwd out.mp4", 1, "must be a file of the work dir"},
		{"-i ../other-chunk/a.mp4 out.mp4", 1, "climbs out of the work dir"},
		{"-i in.mp4 /tmp/out.mp4", 2, "must be a file of the work dir"},
		{"-i in.mp4 -f tee [f=mp4]a.mp4|[f=mpegts]udp://x out.mp4", 3, "format \"tee\""},
		{"-i in.mp4 -vf drawtext=fontfile=/proc/self/environ:text=x out.mp4", 3, "fontfile"},
		{"-i in.mp4 -vf drawtext=text=x:textfile=../../etc/shadow out.mp4", 3, "textfile"},
		{"-i in.mp4 -vf subtitles=/root/x.srt out.mp4", 3, "filename"},
		{"-i in.mp4 -progress http://x/p out.mp4", 3, "names a protocol"},
		{"-vulkan_params x -i in.mp4 out.mp4", 0, "-vulkan_params is not an ffmpeg option this deployment allows"},
		{"-i in.mp4 -vf unknownfilter out.mp4", 3, "filter unknownfilter is not on the list of filters this deployment allows (HELIOS_FFMPEG_FILTERS"},
		{"-i in.mp4 -vf scale=2:2, out.mp4", 3, "filtergraph"},
		{"-i in.mp4 -c:v", 2, "needs a value"},
	} {
		problems := ffargs.Check(words(tc.line), ffargs.Extra{})
		ok := false
		for _, p := range problems {
			ok = ok || (p.Index == tc.index && strings.Contains(p.Message, tc.want))
		}
		if !ok {
			t.Errorf("%s\n  problems %v; want one at %d saying %q", tc.line, problems, tc.index, tc.want)
		}
	}
}

// A deployment adds filters and options; what is refused stays refused.
func TestExtra(t *testing.T) {
	extra := ffargs.Extra{Filters: []string{"rubberband"}, Options: []string{"aq-mode2"}}
	if p := ffargs.Check(words("-i in.mp4 -af rubberband=tempo=2 -aq-mode2 1 out.mp4"), extra); len(p) > 0 {
		t.Errorf("with additions: %v", p)
	}
	if p := ffargs.Check(words("-i in.mp4 -af rubberband=tempo=2 out.mp4"), ffargs.Extra{}); len(p) != 1 {
		t.Errorf("without: %v", p)
	}
	if p := ffargs.Check(words("-i in.mp4 -af ladspa=file=x out.mp4"), ffargs.Extra{Filters: []string{"ladspa"}}); len(p) != 1 {
		t.Errorf("ladspa added: %v", p)
	}
	for _, tc := range []struct {
		filter bool
		name   string
		ok     bool
	}{
		{true, "rubberband", true}, {true, "ladspa", false}, {true, "scale_vulkan", false}, {true, "movie", false},
		{false, "aq-mode2", true}, {false, "init_hw_device", false}, {false, "graph_file", false}, {true, "a=b", false},
	} {
		if err := ffargs.CheckExtra(tc.filter, tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckExtra(%v, %q) = %v", tc.filter, tc.name, err)
		}
	}
}

// words splits a test's command line on spaces, except inside [...]
// where tee's outputs are listed.
func words(line string) []string { return strings.Fields(line) }

func FuzzParseGraph(f *testing.F) {
	for _, s := range []string{"scale=2:2,null", "'a''b'=x", `a\,b`, "[x]split[a][b];[a][b]hstack", "sws_flags=x;null", "a@b=c=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, graph string) {
		filters, err := ffargs.ParseGraph(graph)
		if err != nil {
			return
		}
		refused := false
		for _, fl := range filters {
			if fl.Name == "" {
				t.Fatalf("%q: a filter without a name", graph)
			}
			ffargs.ParseOptions(fl.Args)
			ok, _ := ffargs.FilterAllowed(fl.Name, nil)
			refused = refused || !ok
		}
		// A graph with a filter that is not allowed is refused, however it
		// is written.
		if p := ffargs.Check([]string{"-vf", graph, "out.mp4"}, ffargs.Extra{}); refused && len(p) == 0 {
			t.Fatalf("%q was accepted", graph)
		}
	})
}

func FuzzCheck(f *testing.F) {
	f.Add("-f lavfi -i testsrc2 -vf scale=2:2 -c:v libx264 out.mp4")
	f.Add("-i in.mp4 -af 'lad''spa'=x out.mp4")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, " ")
		problems := ffargs.Check(args, ffargs.Extra{})
		for _, p := range problems {
			if p.Index < 0 || p.Index >= len(args) {
				t.Fatalf("%q: problem at %d of %d arguments", line, p.Index, len(args))
			}
		}
		for i, a := range args {
			if i > 0 && (args[i-1] == "-init_hw_device" || args[i-1] == "-hwaccel" || args[i-1] == "-graph_file") && len(problems) == 0 {
				t.Fatalf("%q: %s accepted", line, args[i-1])
			}
			_ = a
		}
	})
}
