#!/usr/bin/env bash
# Prints (or, with SAM_RUN=1 and the SAM CLI installed, runs) the
# `sam local invoke` commands that exercise each handler with the sample
# events in events/. SAM runs the zips from `make package` in Docker; set
# LAMBDA_ARCH=amd64 when packaging on an x86_64 machine without emulation,
# and point env.json at a real or local bucket.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p build
[ -f build/sam-env.json ] || cat > build/sam-env.json <<'JSON'
{
  "OrchestratorFunction": { "HELIOS_STORAGE_URL": "s3://helios-renders-ACCOUNT-REGION", "HELIOS_ADAPTER": "lambda" },
  "WorkerFunction":       { "HELIOS_STORAGE_URL": "s3://helios-renders-ACCOUNT-REGION" },
  "StitcherFunction":     { "HELIOS_STORAGE_URL": "s3://helios-renders-ACCOUNT-REGION" }
}
JSON

commands=(
  "sam local invoke WorkerFunction       -e events/worker-invoke.json   --env-vars build/sam-env.json"
  "sam local invoke StitcherFunction     -e events/stitcher-invoke.json --env-vars build/sam-env.json"
  "sam local invoke OrchestratorFunction -e events/s3-put.json          --env-vars build/sam-env.json"
  "sam local invoke OrchestratorFunction -e events/http-post-job.json   --env-vars build/sam-env.json"
  "sam local invoke OrchestratorFunction -e events/http-get-status.json --env-vars build/sam-env.json"
  "sam local invoke OrchestratorFunction -e events/http-delete-job.json --env-vars build/sam-env.json"
  "sam local invoke OrchestratorFunction -e events/direct-resume.json   --env-vars build/sam-env.json"
)

echo "# build the zips and the layer first: make package layer"
echo "# build/sam-env.json names the bucket; edit it to yours (s3://<BucketName output>)"
for c in "${commands[@]}"; do echo "$c"; done

if [ "${SAM_RUN:-}" = 1 ]; then
  command -v sam >/dev/null || { echo "sam-local: SAM_RUN=1 needs the SAM CLI (and Docker) on PATH" >&2; exit 1; }
  for c in "${commands[@]}"; do echo "+ $c"; $c; done
fi
echo "# without Docker or an AWS account: make demo-aws-local runs the same bootstraps under the Lambda emulator"
