// Package fmp4 joins fragmented-MP4 chunk segments as bytes, without a muxer.
//
// A chunk rendered by a worker is stream-copied into fragmented MP4
// (FragmentArgs): an init segment (ftyp+moov) and moof+mdat fragments.
// Place rewrites a chunk's fragments to the chunk's place on the job's
// timeline: tfdt decode times shifted to the chunk's first frame,
// composition offsets made relative to it, mfhd sequence numbers
// renumbered, and the chunk's own index boxes (sidx, mfra) dropped. The
// joined file is then one init and every placed chunk, in order, byte for
// byte (the stitcher has storage.Concat write it).
//
// Encoders that reorder frames (B-frames) present each frame some frames
// after it is decoded, and that delay differs from chunk to chunk (x264
// adds none to a chunk of one or two frames, two frames to longer ones),
// while a file has one edit list to take it back. So Place gives every
// chunk the same delay, Placement.Delay, by rewriting its composition
// offsets, and writes that delay into the init's edit list. (Signed
// offsets, trun version 1, would need no edit list, but ffmpeg 5.1 then
// delays the whole file by the largest negative offset.)
package fmp4
