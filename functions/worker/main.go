// Command worker is the chunk worker function: WorkerJob in, WorkerResult out.
package main

import "github.com/helios-project/infrastructure/pkg/pipeline"

func main() { pipeline.Main("worker") }
