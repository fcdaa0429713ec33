# Helios infrastructure: every entry point a user or CI needs.
# `make demo` renders a video locally; `make test` runs everything CI runs.

SHELL    := bash
GO       ?= go
BIN      := bin
GOFLAGS  ?=
export GOFLAGS

# Lambda packaging: arm64 (Graviton) by default; make package LAMBDA_ARCH=amd64 for x86_64.
LAMBDA_ARCH ?= arm64
LAMBDA_OUT  ?= build/lambda
FUNCTIONS   := orchestrator worker stitcher
# The Lambda Runtime Interface Emulator, pinned; installed into bin/ by `make rie`.
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d

.PHONY: all build demo test test-unit bench deps-ffmpeg clean help package rie sam-local demo-aws-local

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

test: deps-ffmpeg rie ## run every test (unit and end to end: real ffmpeg, Lambda emulator, S3 server)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

test-unit: ## run the fast tests only
	$(GO) test -count=1 -short ./...

bench: deps-ffmpeg rie ## run the benchmarks (see docs/PERFORMANCE.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 20m ./...

rie: $(BIN)/aws-lambda-rie ## install the Lambda Runtime Interface Emulator into bin/

$(BIN)/aws-lambda-rie:
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

package: ## build each function as a Lambda bootstrap zip in build/lambda/<fn>.zip (LAMBDA_ARCH=arm64|amd64)
	@set -e; for fn in $(FUNCTIONS); do \
	  mkdir -p $(LAMBDA_OUT)/$$fn; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' \
	    -o $(LAMBDA_OUT)/$$fn/bootstrap ./functions/$$fn; \
	  $(GO) run ./internal/cmd/mkzip -o $(LAMBDA_OUT)/$$fn.zip bootstrap=$(LAMBDA_OUT)/$$fn/bootstrap; \
	  echo "$(LAMBDA_OUT)/$$fn.zip ($(LAMBDA_ARCH))"; \
	done

sam-local: ## print the `sam local invoke` commands for the sample events (SAM_RUN=1 runs them)
	@scripts/sam-local.sh

demo-aws-local: deps-ffmpeg rie ## the AWS path with no account: bootstraps under the Lambda emulator, S3 on loopback
	$(GO) run ./internal/cmd/demo-aws-local -spec examples/jobs/demo.json -event events/s3-put.json -out out/demo-aws.mp4

clean: ## remove build outputs and local renders
	rm -rf $(BIN) build out .helios
