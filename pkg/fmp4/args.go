package fmp4

// FragmentArgs is the argv (ffmpeg first) that stream-copies the MP4 or MOV
// file input into a fragmented MP4 output that Place accepts:
//
//   - frag_keyframe cuts a fragment at every keyframe: one moof+mdat per
//     GOP, so neither ffmpeg nor Place holds more than a GOP in memory;
//   - empty_moov writes the init first and indexes no sample in it;
//   - default_base_moof makes sample data offsets relative to their moof,
//     not to the file, so a fragment can move to another file as bytes.
//
// Every stream is kept (-map 0): a track Place cannot join (audio) is then
// refused by Place, not dropped without a word. -f mp4 because the output
// name need not end in .mp4.
func FragmentArgs(input, output string) []string {
	return []string{
		"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-i", input, "-map", "0", "-c", "copy",
		"-movflags", "+frag_keyframe+empty_moov+default_base_moof",
		"-f", "mp4", "-y", output,
	}
}
