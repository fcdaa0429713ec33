package job

import "testing"

// BenchmarkPlan1MFrames plans a 1,000,000-frame video into the largest plan
// allowed (10,000 chunks).
func BenchmarkPlan1MFrames(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"framesPerChunk=100", Spec{Metadata: Metadata{TotalFrames: 1_000_000}, FramesPerChunk: 100}},
		{"chunkCount=10000", Spec{Metadata: Metadata{TotalFrames: 1_000_000}, ChunkCount: 10_000}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if n := len(tc.spec.Plan()); n != 10_000 {
					b.Fatalf("%d chunks", n)
				}
			}
		})
	}
}
