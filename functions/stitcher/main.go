// Command stitcher is the stitcher function: StitchRequest in, StitchResult out.
package main

import "github.com/helios-project/infrastructure/pkg/pipeline"

func main() { pipeline.Main("stitcher") }
