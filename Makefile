# Helios infrastructure: every entry point a user or CI needs.
# `make demo` renders a video locally; `make test` runs everything CI runs.

SHELL    := bash
GO       ?= go
BIN      := bin
GOFLAGS  ?=
export GOFLAGS

.PHONY: all build demo test test-unit bench deps-ffmpeg clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build the helios CLI and the three functions into bin/
	$(GO) build -o $(BIN)/helios ./cmd/helios
	$(GO) build -o $(BIN)/orchestrator ./functions/orchestrator
	$(GO) build -o $(BIN)/worker ./functions/worker
	$(GO) build -o $(BIN)/stitcher ./functions/stitcher

deps-ffmpeg:
	@scripts/ensure-ffmpeg.sh

demo: deps-ffmpeg build ## render examples/jobs/demo.json locally to out/demo.mp4
	@rm -rf out/.demo-storage
	$(BIN)/helios job run examples/jobs/demo.json --out out/demo.mp4 --storage out/.demo-storage
	@ffprobe -v error -select_streams v:0 -count_packets \
	  -show_entries stream=codec_name,width,height,nb_read_packets -of default=noprint_wrappers=1 out/demo.mp4 \
	  | sed 's/^/  ffprobe: /'

test: deps-ffmpeg ## run every test (unit and end to end, with real ffmpeg)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

test-unit: ## run the fast tests only
	$(GO) test -count=1 -short ./...

bench: deps-ffmpeg ## run the benchmarks (see docs/PERFORMANCE.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 20m ./...

clean: ## remove build outputs and local renders
	rm -rf $(BIN) build out .helios
