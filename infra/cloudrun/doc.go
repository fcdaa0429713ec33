// Package cloudrun holds the Cloud Run deployment: the image (Dockerfile),
// the three Knative service definitions (orchestrator.yaml, worker.yaml,
// stitcher.yaml), deploy.sh and destroy.sh. It has no Go code of its own;
// deploy_test.go runs the scripts against a stand-in gcloud and checks what
// they would create.
package cloudrun
