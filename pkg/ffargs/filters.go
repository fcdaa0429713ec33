package ffargs

import (
	"slices"
	"strings"
)

// The filters a job may use: they compute on frames and samples and load
// nothing (no plugin, no model, no device, no network). Built from what
// the job formats, the examples and the tests use, and the rest of
// ffmpeg's filters that are plain arithmetic on pictures and sound. A
// deployment adds one with HELIOS_FFMPEG_FILTERS; refused ones cannot be
// added.
var allowedFilters = set(
	// Video.
	"addroi", "alphaextract", "alphamerge", "amplify", "atadenoise", "avgblur", "bbox", "bilateral", "bitplanenoise",
	"blackdetect", "blackframe", "blend", "blockdetect", "blurdetect", "bwdif", "cas", "chromahold", "chromakey", "chromanr",
	"chromashift", "ciescope", "codecview", "colorbalance", "colorchannelmixer", "colorcontrast", "colorcorrect", "colorize",
	"colorkey", "colorhold", "colorlevels", "colormap", "colormatrix", "colorspace", "colortemperature", "convolution",
	"convolve", "copy", "crop", "cropdetect", "cue", "curves", "datascope", "dblur", "dctdnoiz", "deband", "deblock", "decimate",
	"deconvolve", "dedot", "deflate", "deflicker", "dejudder", "delogo", "deshake", "despill", "detelecine", "dilation",
	"displace", "drawbox", "drawgraph", "drawgrid", "drawtext", "edgedetect", "elbg", "entropy", "epx", "eq", "erosion", "estdif",
	"exposure", "extractplanes", "fade", "fftdnoiz", "fftfilt", "field", "fieldmatch", "fieldorder", "fillborders", "floodfill",
	"format", "fps", "framepack", "framerate", "framestep", "freezedetect", "freezeframes", "fspp", "gblur", "geq", "gradfun",
	"graphmonitor", "grayworld", "greyedge", "guided", "haldclut", "hflip", "histeq", "histogram", "hqdn3d", "hqx", "hstack",
	"hsvhold", "hsvkey", "hue", "huesaturation", "hysteresis", "identity", "idet", "il", "inflate", "interlace", "interleave",
	"kerndeint", "kirsch", "lagfun", "latency", "lenscorrection", "limitdiff", "limiter", "loop", "lumakey", "lut", "lut1d", "lut2",
	"lut3d", "lutrgb", "lutyuv", "maskedclamp", "maskedmax", "maskedmerge", "maskedmin", "maskedthreshold", "maskfun",
	"mcdeint", "median", "mergeplanes", "mestimate", "metadata", "midequalizer", "minterpolate", "mix", "monochrome", "morpho",
	"mpdecimate", "msad", "multiply", "negate", "nlmeans", "noformat", "noise", "normalize", "null", "oscilloscope", "overlay",
	"owdenoise", "pad", "palettegen", "paletteuse", "perms", "perspective", "phase", "photosensitivity", "pixdesctest",
	"pixelize", "pixscope", "pp", "pp7", "premultiply", "prewitt", "pseudocolor", "psnr", "pullup", "qp", "random", "readeia608",
	"readvitc", "realtime", "remap", "removegrain", "repeatfields", "reverse", "rgbashift", "roberts", "rotate", "sab", "scale",
	"scale2ref", "scdet", "scharr", "scroll", "segment", "select", "selectivecolor", "separatefields", "setdar", "setfield",
	"setparams", "setpts", "setrange", "setsar", "settb", "shear", "showinfo", "showpalette", "shuffleframes", "shufflepixels",
	"shuffleplanes", "sidedata", "signalstats", "signature", "siti", "smartblur", "sobel", "split", "spp", "ssim", "stereo3d",
	"streamselect", "subtitles", "ass", "super2xsai", "swaprect", "swapuv", "tblend", "telecine", "thistogram", "threshold",
	"thumbnail", "tile", "tinterlace", "tlut2", "tmedian", "tmidequalizer", "tmix", "tonemap", "tpad", "transpose", "trim",
	"unpremultiply", "unsharp", "untile", "uspp", "v360", "vaguedenoiser", "varblur", "vectorscope", "vflip", "vfrdet", "vibrance",
	"vidstabdetect", "vidstabtransform", "vif", "vignette", "vmafmotion", "vstack", "w3fdif", "waveform", "weave", "xbr",
	"xcorrelate", "xfade", "xmedian", "xstack", "yadif", "yaepblur", "zoompan", "zscale", "concat", "nullsink", "buffersink",
	// Video sources.
	"allrgb", "allyuv", "cellauto", "color", "colorchart", "colorspectrum", "gradients", "haldclutsrc", "life", "mandelbrot",
	"nullsrc", "pal75bars", "pal100bars", "rgbtestsrc", "sierpinski", "smptebars", "smptehdbars", "testsrc", "testsrc2", "yuvtestsrc",
	// Audio.
	"acompressor", "acontrast", "acopy", "acrossfade", "acrossover", "acrusher", "acue", "adeclick", "adeclip", "adecorrelate",
	"adelay", "adenorm", "aderivative", "adrc", "adynamicequalizer", "adynamicsmooth", "aecho", "aemphasis", "aeval", "aexciter",
	"afade", "afftdn", "afftfilt", "afir", "aformat", "afreqshift", "afwtdn", "agate", "aiir", "aintegral", "ainterleave",
	"alatency", "alimiter", "allpass", "aloop", "amerge", "ametadata", "amix", "amultiply", "anequalizer", "anlmdn", "anlmf",
	"anlms", "anull", "apad", "aperms", "aphaser", "aphaseshift", "apsyclip", "apulsator", "arealtime", "aresample", "areverse",
	"asdr", "asegment", "aselect", "asetnsamples", "asetpts", "asetrate", "asettb", "ashowinfo", "asidedata", "asoftclip",
	"aspectralstats", "asplit", "astats", "astreamselect", "asubboost", "asubcut", "asupercut", "asuperpass", "asuperstop",
	"atempo", "atilt", "atrim", "axcorrelate", "bandpass", "bandreject", "bass", "biquad", "channelmap", "channelsplit", "chorus",
	"compand", "compensationdelay", "crossfeed", "crystalizer", "dcshift", "deesser", "dialoguenhance", "drmeter", "dynaudnorm",
	"earwax", "ebur128", "equalizer", "extrastereo", "firequalizer", "flanger", "haas", "hdcd", "headphone", "highpass",
	"highshelf", "join", "loudnorm", "lowpass", "lowshelf", "mcompand", "pan", "replaygain", "sidechaincompress",
	"sidechaingate", "silencedetect", "silenceremove", "speechnorm", "stereotools", "stereowiden", "superequalizer", "surround",
	"treble", "tremolo", "vibrato", "volume", "volumedetect", "anullsink", "abuffersink",
	// Audio sources, and pictures of sound.
	"aevalsrc", "afirsrc", "anoisesrc", "anullsrc", "hilbert", "sinc", "sine",
	"abitscope", "adrawgraph", "agraphmonitor", "ahistogram", "aphasemeter", "avectorscope", "showcqt", "showcwt", "showfreqs",
	"showspatial", "showspectrum", "showspectrumpic", "showvolume", "showwaves", "showwavespic", "spectrumsynth",
)

// refusedFilters load code or data that is not the job's (a plugin, a
// neural-network model, a device driver), reach a device or the network,
// or read their own commands or inputs from a file or URL out of the
// validator's sight. Neither a spec nor HELIOS_FFMPEG_FILTERS can allow
// them.
var refusedFilters = byName(map[string][]string{
	"loads native code (a plugin library)":                                       {"ladspa", "lv2", "frei0r", "frei0r_src"},
	"opens another input, with options of its own, out of the validator's sight": {"movie", "amovie"},
	"takes commands from the network":                                            {"zmq", "azmq"},
	"reads commands from a file":                                                 {"sendcmd", "asendcmd"},
	"loads a model or database that is not the job's":                            {"lensfun", "libvmaf", "ocr", "nnedi", "sr", "derain", "dnn_processing", "dnn_classify", "dnn_detect", "arnndn"},
	"runs on a hardware device (its driver loads code)":                          {"libplacebo", "hwupload", "hwdownload", "hwmap", "program_opencl", "openclsrc"},
	"reads a file named in its options out of the validator's sight":             {"find_rect", "cover_rect", "fieldhint", "removelogo", "sofalizer"},
})

// byName turns reasons and their names into the reason of each name.
func byName(reasons map[string][]string) map[string]string {
	m := map[string]string{}
	for reason, names := range reasons {
		for _, n := range names {
			m[n] = reason
		}
	}
	return m
}

// refusedFilterSuffixes are the hardware filters: each opens a device.
var refusedFilterSuffixes = []string{"_opencl", "_vulkan", "_vaapi", "_cuda", "_npp", "_qsv", "_videotoolbox", "_vdpau", "_cuvid", "_amf", "_d3d11", "_rkrga"}

// fileOptions are the options, by filter, that name a file the filter
// reads or writes: they must be files of the job's work dir. The names
// in order are the options given by position.
var fileOptions = map[string]struct{ named, positional []string }{
	"drawtext":         {named: []string{"fontfile", "textfile"}, positional: []string{"fontfile", "text", "textfile"}},
	"subtitles":        {named: []string{"filename", "f", "fontsdir"}, positional: []string{"filename"}},
	"ass":              {named: []string{"filename", "f", "fontsdir"}, positional: []string{"filename"}},
	"lut3d":            {named: []string{"file"}, positional: []string{"file"}},
	"lut1d":            {named: []string{"file"}, positional: []string{"file"}},
	"curves":           {named: []string{"psfile", "plot"}},
	"life":             {named: []string{"filename", "f"}},
	"vidstabdetect":    {named: []string{"result"}},
	"vidstabtransform": {named: []string{"input"}},
	"psnr":             {named: []string{"stats_file", "f"}},
	"ssim":             {named: []string{"stats_file", "f"}},
	"metadata":         {named: []string{"file"}},
	"ametadata":        {named: []string{"file"}},
	"signature":        {named: []string{"filename"}},
}

// FilterAllowed says whether a filter may be used, given the deployment's
// additions, and why not.
func FilterAllowed(name string, extra []string) (bool, string) {
	lower := strings.ToLower(name)
	if why, ok := refusedFilters[lower]; ok {
		return false, why
	}
	for _, suf := range refusedFilterSuffixes {
		if strings.HasSuffix(lower, suf) {
			return false, "runs on a hardware device"
		}
	}
	// ffmpeg finds filters by their exact names.
	if allowedFilters[name] || slices.Contains(extra, name) {
		return true, ""
	}
	return false, "is not on the list of filters this deployment allows (HELIOS_FFMPEG_FILTERS adds one)"
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
