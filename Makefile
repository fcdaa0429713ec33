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

# The ffmpeg layer: pinned static builds by default; FFMPEG_BIN=... FFPROBE_BIN=... to package given binaries.
LAYER_ZIP   := layers/ffmpeg/build/ffmpeg-layer.zip
# The jsii runtime's Node.js version banners (deprecated; end of life, by
# major version) are silenced: make deps-node has checked Node.js already.
NODE_MAJOR   = $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
CDK         := cd infra/cdk && JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=$(NODE_MAJOR) npx --no-install cdk --no-notices
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: fuzz test-faults all build demo demo-helios renderer test test-unit test-cdk bench deps-ffmpeg deps-node clean help package rie layer synth deploy-aws destroy-aws sam-local demo-aws-local demo-gcp-local deploy-gcp destroy-gcp

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
	@mkdir -p out
	$(BIN)/helios job run examples/jobs/demo.json --out out/demo.mp4 --storage out/.demo-storage
	@ffprobe -v error -select_streams v:0 -count_packets \
	  -show_entries stream=codec_name,width,height,nb_read_packets -of default=noprint_wrappers=1 out/demo.mp4 \
	  | sed 's/^/  ffprobe: /'

test: deps-ffmpeg deps-node rie renderer ## run every test (unit and end to end: real ffmpeg, Lambda emulator, S3 server, CDK synth)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	cd $(RENDERER) && node --test test/
	$(MAKE) test-cdk

test-cdk: deps-node ## synthesize the CDK stack and check it with assertions
	cd infra/cdk && $(GO) vet . && $(GO) test -count=1 -timeout 10m .

# The Helios renderer (renderers/helios: `helios render` for workers) and the
# example compositions' @helios-project/core, from their package-locks; on
# linux/x64 also the npm headless shell, unpacked once into .browser/.
RENDERER := renderers/helios

renderer: deps-node $(RENDERER)/node_modules/.installed examples/compositions/node_modules/.installed ## install the Helios renderer and the example compositions' packages (npm ci)
	@if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
	  test -x $(RENDERER)/.browser/chromium || (cd $(RENDERER) && npm run --silent install-browser); \
	else echo "renderer: no npm headless shell for $$(uname -sm); helios render uses a system chromium"; fi

%/node_modules/.installed: %/package.json %/package-lock.json
	cd $* && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo-helios: deps-ffmpeg build renderer ## render the canvas example composition in chunks to out/helios.mp4, beside a one-pass render
	@scripts/demo-helios.sh

deps-node:
	@command -v node >/dev/null 2>&1 || { echo "node is missing: the CDK (jsii) needs Node.js 20+ (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "Node.js $$(node --version) is too old: the CDK (jsii) needs 20+ (22 or 24 supported)" >&2; exit 1; }

test-unit: ## run the fast tests only
	$(GO) test -count=1 -short ./...

bench: deps-ffmpeg rie ## run the benchmarks and the hedging simulation (see docs/PERFORMANCE.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 20m ./...
	@# Virtual time, not wall time: synctest needs a *testing.T, so it is a test.
	$(GO) test -count=1 -v -run '^TestHedgeSimulation$$' ./pkg/orchestrator | grep -v '^=== '

test-faults: deps-ffmpeg rie ## the fault-injection suite alone, with its table of cases and outcomes (also part of make test)
	$(GO) test -count=1 -v -run . ./e2e/faults | grep -v '^=== '

# Fuzz targets, package:function; `make test` runs their seed corpora
# (testdata/fuzz and f.Add) as ordinary tests.
FUZZ_TARGETS := ./pkg/job:FuzzSpec ./pkg/job:FuzzExpand ./pkg/job:FuzzKeys ./pkg/worker:FuzzExtract \
                ./pkg/trigger:FuzzLambdaEvent ./pkg/trigger:FuzzHTTPEvent ./pkg/ffargs:FuzzParseGraph ./pkg/ffargs:FuzzCheck
FUZZTIME ?= 1m

fuzz: ## fuzz every target for FUZZTIME each (default 1m; new failures land in testdata/fuzz)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "==> $$fn ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

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

layer: ## build the ffmpeg Lambda layer zip (LAMBDA_ARCH=arm64|amd64; FFMPEG_BIN/FFPROBE_BIN to use given binaries)
	$(GO) run ./layers/ffmpeg -arch $(LAMBDA_ARCH) -o $(LAYER_ZIP)

infra/cdk/node_modules: infra/cdk/package.json infra/cdk/package-lock.json
	cd infra/cdk && npm ci --no-audit --no-fund
	@touch $@

synth: deps-node infra/cdk/node_modules package layer ## synthesize the CloudFormation template into infra/cdk/cdk.out
	$(CDK) synth --quiet $(CDK_ARGS)
	@node infra/cdk/resource-summary.mjs infra/cdk/cdk.out/*.template.json # what a deploy would create

deploy-aws: deps-node infra/cdk/node_modules package layer ## deploy with the pinned CDK CLI (AWS credentials needed; CDK_ARGS="-c workerConcurrency=100")
	$(CDK) deploy --require-approval broadening $(CDK_ARGS)

# The CDK calls a stack it cannot find "destroyed": awsstack looks first and
# says which account and region it looked in (exit 3: not there).
destroy-aws: deps-node infra/cdk/node_modules package layer ## remove the stack (the bucket is kept unless removalPolicy=destroy)
	@$(GO) build -o $(BIN)/awsstack ./internal/cmd/awsstack
	@rc=0; $(BIN)/awsstack $(CDK_ARGS) || rc=$$?; \
	if [ $$rc -eq 3 ]; then exit 0; elif [ $$rc -ne 0 ]; then exit $$rc; fi; \
	echo '$(CDK) destroy $(CDK_ARGS)'; $(CDK) destroy $(CDK_ARGS)

sam-local: ## print the `sam local invoke` commands for the sample events (SAM_RUN=1 runs them)
	@scripts/sam-local.sh

demo-aws-local: deps-ffmpeg rie ## the AWS path with no account: bootstraps under the Lambda emulator, S3 on loopback
	$(GO) run ./internal/cmd/demo-aws-local -spec examples/jobs/demo.json -event events/s3-put.json -out out/demo-aws.mp4

demo-gcp-local: deps-ffmpeg ## the Cloud Run path with no account: services, GCS and Pub/Sub push on loopback
	$(GO) run ./internal/cmd/demo-gcp-local -spec examples/jobs/demo.json -out out/demo-gcp.mp4

deploy-gcp: ## deploy to Cloud Run: make deploy-gcp PROJECT=my-project REGION=europe-west1 (gcloud signed in)
	@test -n "$(PROJECT)" || { echo "PROJECT is required: make deploy-gcp PROJECT=my-project REGION=europe-west1" >&2; exit 2; }
	@test -n "$(REGION)" || { echo "REGION is required: make deploy-gcp PROJECT=my-project REGION=europe-west1" >&2; exit 2; }
	PROJECT=$(PROJECT) REGION=$(REGION) infra/cloudrun/deploy.sh

destroy-gcp: ## remove the Cloud Run deployment (the bucket is kept unless DELETE_BUCKET=1)
	@test -n "$(PROJECT)" || { echo "PROJECT is required: make destroy-gcp PROJECT=my-project REGION=europe-west1" >&2; exit 2; }
	@test -n "$(REGION)" || { echo "REGION is required: make destroy-gcp PROJECT=my-project REGION=europe-west1" >&2; exit 2; }
	PROJECT=$(PROJECT) REGION=$(REGION) infra/cloudrun/destroy.sh

clean: ## remove build outputs and local renders
	rm -rf $(BIN) build out .helios
