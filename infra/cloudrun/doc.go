// Package cloudrun holds the Cloud Run deployment: the image (Dockerfile),
// the Knative service definitions (orchestrator.yaml, worker.yaml,
// stitcher.yaml, and browser-worker.yaml for the browser worker's image,
// infra/browser-worker/Dockerfile), their Cloud Build recipes, deploy.sh and
// destroy.sh. It has no Go code of its own; deploy_test.go runs the scripts
// against a stand-in gcloud and checks what they would create.
package cloudrun
