package ffargs

import "strings"

// option is what ffmpeg does with an option: whether it takes a value,
// and the check of that value.
type option struct {
	arg   bool
	check func(c *checker, i int, value string)
}

var (
	flag      = option{}
	value     = option{arg: true}
	graphOpt  = option{arg: true, check: func(c *checker, i int, v string) { c.graph(i, v) }}
	formatOpt = option{arg: true, check: (*checker).checkFormat}
	inputOpt  = option{arg: true, check: (*checker).input}
	codecOpt  = option{arg: true, check: (*checker).checkCodec}
	fileOpt   = option{arg: true, check: func(c *checker, i int, v string) {
		if why := localPath(v); why != "" {
			c.addf(i, "%q %s", short(v), why)
		}
	}}
)

// options are the ffmpeg options a job may use: ffmpeg's own (global,
// per input, per output) and the codec, format and scaler options
// (AVOptions) the job formats and the examples use, none of which loads
// anything.
var options = map[string]option{
	// Global.
	"hide_banner": flag, "y": flag, "n": flag, "stdin": flag, "report": flag, "stats": flag, "benchmark": flag,
	"benchmark_all": flag, "debug_ts": flag, "xerror": flag, "copyts": flag, "start_at_zero": flag, "ignore_unknown": flag,
	"copy_unknown": flag, "auto_conversion_filters": flag,
	"loglevel": value, "v": value, "stats_period": value, "filter_threads": value, "filter_complex_threads": value,
	"max_error_rate": value, "abort_on": value, "copytb": value, "dts_delta_threshold": value, "dts_error_threshold": value,
	"vsync": value, "fps_mode": value, "frame_drop_threshold": value, "cpuflags": value,
	"filter_complex": graphOpt, "lavfi": graphOpt,
	"progress": fileOpt, "passlogfile": fileOpt, "vstats_file": fileOpt,
	// Per input or output.
	"f": formatOpt, "i": inputOpt, "c": codecOpt, "codec": codecOpt, "vcodec": codecOpt, "acodec": codecOpt,
	"scodec": codecOpt, "dcodec": codecOpt,
	"ss": value, "sseof": value, "t": value, "to": value, "itsoffset": value, "itsscale": value, "stream_loop": value,
	"re": flag, "accurate_seek": flag, "autorotate": flag, "shortest": flag, "an": flag, "vn": flag, "sn": flag, "dn": flag,
	"copyinkf": flag, "r": value, "s": value, "pix_fmt": value, "aspect": value, "ar": value, "ac": value, "sample_fmt": value,
	"ch_layout": value, "channel_layout": value, "thread_queue_size": value, "discard": value, "map": value,
	"map_metadata": value, "map_chapters": value, "metadata": value, "disposition": value, "frames": value,
	"vframes": value, "aframes": value, "dframes": value, "fs": value, "timestamp": value, "tag": value, "vtag": value,
	"atag": value, "bsf": value, "force_key_frames": value, "max_muxing_queue_size": value,
	"muxing_queue_data_threshold": value, "enc_time_base": value, "qscale": value, "q": value, "pass": value,
	"target": value, "apad": value, "top": value, "filter": graphOpt, "vf": graphOpt, "af": graphOpt,
	// Codec options.
	"threads": value, "b": value, "maxrate": value, "minrate": value, "bufsize": value, "crf": value, "qp": value,
	"preset": value, "tune": value, "profile": value, "level": value, "x264-params": value, "x264opts": value,
	"x265-params": value, "g": value, "bf": value, "keyint_min": value, "sc_threshold": value, "refs": value,
	"flags": value, "flags2": value, "qmin": value, "qmax": value, "qdiff": value, "rc-lookahead": value, "aq-mode": value,
	"aq-strength": value, "psy-rd": value, "deblock": value, "b-pyramid": value, "weightp": value, "nal-hrd": value,
	"forced-idr": value, "deadline": value, "cpu-used": value, "row-mt": value, "tile-columns": value, "tile-rows": value,
	"frame-parallel": value, "lag-in-frames": value, "auto-alt-ref": value, "arnr-maxframes": value, "arnr-strength": value,
	"lossless": value, "quality": value, "speed": value, "static-thresh": value, "undershoot-pct": value,
	"overshoot-pct": value, "application": value, "vbr": value, "frame_duration": value, "compression_level": value,
	"aac_coder": value, "cutoff": value, "colorspace": value, "color_primaries": value, "color_trc": value,
	"color_range": value, "chroma_sample_location": value, "field_order": value, "sws_flags": value,
	"pred": value, "slices": value, "slicecrc": value, "context": value, "coder": value, "vendor": value, "bits_per_mb": value,
	"alpha_bits": value, "quant_mat": value, "mbs_per_slice": value, "frame_size": value, "global_quality": value,
	// Format (muxer and demuxer) options.
	"movflags": value, "frag_duration": value, "frag_size": value, "min_frag_duration": value, "fragment_index": value,
	"use_editlist": value, "video_track_timescale": value, "brand": value, "write_tmcd": value, "write_prft": value,
	"movie_timescale": value, "fflags": value, "avoid_negative_ts": value, "output_ts_offset": value, "max_delay": value,
	"muxdelay": value, "muxpreload": value, "max_interleave_delta": value, "strict": value, "err_detect": value,
	"probesize": value, "analyzeduration": value, "fpsprobesize": value, "framerate": value, "video_size": value,
	"pixel_format": value, "pattern_type": value, "start_number": value, "loop": value, "cluster_size_limit": value,
	"cluster_time_limit": value, "reserve_index_space": value, "live": value, "mpegts_flags": value, "muxrate": value,
	"pcr_period": value, "sample_rate": value, "channels": value, "seekable": value, "update": value,
	"frame_pts": value, "final_delay": value, "plays": value, "graph": graphOpt,
}

// refusedOptions load code or data that is not the job's, open devices,
// read arguments from files out of the validator's sight, or reach the
// network: neither a spec nor HELIOS_FFMPEG_OPTIONS can allow them.
var refusedOptions = map[string]string{
	"init_hw_device":        "opens a hardware device (its driver and layers load code)",
	"filter_hw_device":      "hands filters a hardware device",
	"hwaccel":               "decodes on a hardware device (its driver loads code)",
	"hwaccel_device":        "names a hardware device",
	"hwaccel_output_format": "keeps frames on a hardware device",
	"hwaccels":              "lists hardware devices",
	"vaapi_device":          "opens a VA-API device",
	"qsv_device":            "opens a Quick Sync device",
	"graph_file":            "reads a filtergraph from a file, out of the validator's sight; give it with -f lavfi -i or -filter_complex",
	"filter_script":         "reads a filtergraph from a file, out of the validator's sight; give it in the arguments",
	"filter_complex_script": "reads a filtergraph from a file, out of the validator's sight; give it in the arguments",
	"attach":                "attaches a file to the output",
	"dump_attachment":       "writes attachments of an input to files",
	"protocol_whitelist":    "opens protocols beyond files",
	"protocol_blacklist":    "changes the protocols an input may open",
	"format_whitelist":      "changes the formats an input may open",
	"codec_whitelist":       "changes the codecs an input may open",
	"headers":               "sends HTTP headers (the network is not for jobs)",
	"user_agent":            "sets an HTTP client's name (the network is not for jobs)",
	"cookies":               "sends HTTP cookies (the network is not for jobs)",
	"http_proxy":            "sends requests through a proxy (the network is not for jobs)",
	"safe":                  "lets the concat demuxer open any path or URL",
	"sdp_file":              "writes a session description for network streams",
	"format_opts":           "passes options to a nested input out of the validator's sight",
	"dumpgraph":             "prints a filtergraph",
}

// Formats: what -f may name for an input, and for an output.
var (
	inputFormats = set("lavfi", "image2", "image2pipe", "mov", "mp4", "m4a", "matroska", "webm", "wav", "flac", "mp3", "ogg",
		"aac", "s16le", "s16be", "s24le", "s32le", "f32le", "f64le", "u8", "rawvideo", "mpegts", "h264", "hevc", "yuv4mpegpipe",
		"apng", "gif", "png_pipe", "jpeg_pipe", "webp_pipe", "srt", "ass", "webvtt")
	outputFormats = set("mp4", "mov", "ipod", "ismv", "matroska", "webm", "mpegts", "null", "image2", "image2pipe", "rawvideo",
		"wav", "flac", "s16le", "s24le", "f32le", "framemd5", "md5", "framecrc", "crc", "hash", "framehash", "streamhash",
		"yuv4mpegpipe", "apng", "gif", "ogg", "mp3", "adts", "ffmetadata", "srt", "ass", "webvtt", "nut")
)

func (c *checker) checkFormat(i int, f string) {
	if !inputFormats[f] && !outputFormats[f] {
		c.addf(i, "format %q is not one a job may read or write (files and lavfi graphs only: %s)", short(f), "mp4, mov, matroska, webm, mpegts, image2, wav, flac, rawvideo, null, lavfi, …")
	}
	c.format = f
}

// hardwareCodecs end in these: each opens a device.
var hardwareCodecs = []string{"_vaapi", "_qsv", "_nvenc", "_cuvid", "_v4l2m2m", "_vulkan", "_amf", "_videotoolbox", "_mediacodec", "_omx", "_rkmpp", "_mf", "_vdpau", "_d3d11va", "_dxva2"}

func (c *checker) checkCodec(i int, codec string) {
	lower := strings.ToLower(codec)
	for _, suf := range hardwareCodecs {
		if strings.HasSuffix(lower, suf) {
			c.addf(i, "codec %s runs on a hardware device; use a software codec (libx264, libx265, libvpx-vp9, prores_ks, …)", codec)
			return
		}
	}
	if !validName(codec) {
		c.addf(i, "codec %q is not a codec name", short(codec))
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
