// Command awsstack tells `make destroy-aws` whether the stack is there
// before `cdk destroy` runs: the CDK reports a stack it cannot find as
// "destroyed", so a wrong region or account looked like a finished teardown
// while the real stack kept running. It looks the stack up with the
// credentials and region the CDK CLI would use and says which account and
// region it looked in.
//
//	go run ./internal/cmd/awsstack [CDK ARGS...]   # -c stackName=NAME is read from them
//
// Exit status: 0 the stack is there; 3 it is not (definitely: CloudFormation
// said so); 1 it could not tell (no credentials, an expired session, a
// denied permission, no region), with what to do.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// DefaultStackName is the CDK app's (infra/cdk settings' StackName).
const DefaultStackName = "HeliosRenderStack"

const (
	exitThere   = 0
	exitTrouble = 1
	exitAbsent  = 3
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := stackName(args)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "destroy-aws: "+format+"\n", a...)
		return exitTrouble
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fail("reading the AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		return fail("no AWS region: set AWS_REGION (or `aws configure set region REGION`) to the region the stack was deployed to; nothing was destroyed")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return fail("no AWS credentials found: run `aws configure` (or `aws sso login`, or set AWS_PROFILE); nothing was destroyed")
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fail("%s; nothing was destroyed", explain(err, cfg.Region))
	}
	where := fmt.Sprintf("account %s, region %s", aws.ToString(id.Account), cfg.Region)
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	var api smithy.APIError
	switch {
	case errors.As(err, &api) && api.ErrorCode() == "ValidationError" && strings.Contains(api.ErrorMessage(), "does not exist"):
		fmt.Fprintf(stdout, "No stack %s in %s: nothing to destroy there.\n"+
			"If it was deployed to another region or account, run again with AWS_REGION or AWS_PROFILE set to it.\n", name, where)
		return exitAbsent
	case err != nil:
		return fail("looking up stack %s in %s: %s; nothing was destroyed", name, where, explain(err, cfg.Region))
	case len(out.Stacks) == 0:
		return fail("looking up stack %s in %s: CloudFormation answered with no stack and no error; nothing was destroyed", name, where)
	}
	fmt.Fprintf(stdout, "Stack %s in %s: %s.\n", name, where, out.Stacks[0].StackStatus)
	return exitThere
}

// stackName reads -c/--context stackName=NAME from the CDK's arguments.
func stackName(args []string) string {
	name := DefaultStackName
	for i, a := range args {
		var kv string
		switch {
		case (a == "-c" || a == "--context") && i+1 < len(args):
			kv = args[i+1]
		case strings.HasPrefix(a, "--context="):
			kv = strings.TrimPrefix(a, "--context=")
		case strings.HasPrefix(a, "-c="):
			kv = strings.TrimPrefix(a, "-c=")
		}
		if v, ok := strings.CutPrefix(kv, "stackName="); ok && v != "" {
			name = v
		}
	}
	return name
}

// explain says what went wrong in words a user can act on, without the
// SDK's layers of wrapping.
func explain(err error, region string) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ExpiredToken", "ExpiredTokenException", "RequestExpired":
			return "the AWS session has expired: sign in again (`aws sso login`, or new keys in `aws configure`)"
		case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSignatureException":
			return "AWS does not accept these credentials (" + api.ErrorCode() + "): check them with `aws configure`"
		case "AccessDenied", "AccessDeniedException":
			return "access denied: " + api.ErrorMessage() + " (the identity needs cloudformation:DescribeStacks and the rights to delete the stack)"
		}
		return api.ErrorCode() + ": " + api.ErrorMessage()
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return fmt.Sprintf("could not reach AWS in %s: %v", region, netErr)
	}
	return fmt.Sprintf("could not reach AWS in %s: %v", region, err)
}
