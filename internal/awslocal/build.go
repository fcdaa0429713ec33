package awslocal

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/helios-project/infrastructure/internal/localnet"
)

// BuildBootstrap builds a Go main package as a Lambda bootstrap for this
// machine's architecture (make package builds the deployable arm64 ones).
func BuildBootstrap(ctx context.Context, pkg, dir string) (string, error) {
	return localnet.Build(ctx, pkg, dir, "bootstrap", "lambda.norpc")
}

// FindRIE locates aws-lambda-rie: $HELIOS_RIE, else bin/aws-lambda-rie in
// the module root (where `make test` installs it), else PATH.
func FindRIE() (string, error) {
	if p := os.Getenv("HELIOS_RIE"); p != "" {
		return p, nil
	}
	if root, err := localnet.ModuleRoot(); err == nil {
		p := filepath.Join(root, "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("aws-lambda-rie not found: run `make rie` (go install of the Lambda Runtime Interface Emulator into bin/)")
}
