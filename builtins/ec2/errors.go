package ec2

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// Error is an error EC2 reported, in words a user can act on. The caller
// adds where the pool is declared; Hint says what to do. None of its text
// comes from the credentials: EC2's messages name no secret, and nothing
// here adds one. Error() leaves the hint out, for the caller to print as
// its own "hint:" line after the pool's position.
type Error struct {
	Op      string // the EC2 action: "RunInstances"
	Code    string // EC2's error code: "InsufficientInstanceCapacity"
	Message string // EC2's message, plainly
	Hint    string // what to do about it; "" when there is nothing to say
	err     error
}

func (e *Error) Error() string { return "ec2 " + e.Op + ": " + e.Code + ": " + e.Message }

// Unwrap gives the SDK's error (smithy.APIError), with its request id.
func (e *Error) Unwrap() error { return e.err }

// wrap turns an SDK error from op into an *Error when EC2 answered, and
// names op otherwise (no answer: a network error, a timeout).
func wrap(op, region string, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("ec2 %s: %w", op, err)
	}
	e := &Error{Op: op, Code: ae.ErrorCode(), Message: ae.ErrorMessage(), Hint: hint(op, ae.ErrorCode(), region), err: err}
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		e.Message += fmt.Sprintf(" (gave up after %d attempts)", me.Attempt)
	}
	return e
}

// code is the EC2 error code in err, or "".
func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

const credentialsHint = "check the credentials the AWS chain found: AWS_PROFILE, " +
	"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials and ~/.aws/config, in that order"

func hint(op, code, region string) string {
	switch {
	case code == "InsufficientInstanceCapacity":
		return "EC2 has no capacity for this instance type in this availability zone just now: " +
			"try another type or subnet/AZ, or wait"
	case code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded":
		return "the account's instance limit in " + region + " is reached: terminate instances you no longer need, " +
			"or ask AWS for a higher quota (Service Quotas, EC2)"
	case code == "UnauthorizedOperation":
		return "the identity the AWS chain found may not call ec2:" + op + "; grant it in its IAM policy, or " +
			strings.TrimPrefix(credentialsHint, "check ")
	case code == "AuthFailure" || code == "SignatureDoesNotMatch" || code == "InvalidClientTokenId":
		return credentialsHint + "; and that this machine's clock is right"
	case strings.HasPrefix(code, "InvalidAMIID."):
		return "check `image`: it must be an AMI id (ami-…) that exists in " + region
	case code == "InvalidParameterValue" || code == "InvalidParameterCombination":
		return "check the provider's settings (type, subnet, security_group, user_data) against what EC2 accepts in " + region
	case strings.HasPrefix(code, "InvalidSubnetID."):
		return "check `subnet`: it must exist in " + region
	case strings.HasPrefix(code, "InvalidGroup"):
		return "check `security_group`: it must exist in the subnet's VPC"
	case strings.HasPrefix(code, "InvalidKeyPair."):
		return "check `keypair`: it must exist in " + region
	case strings.HasPrefix(code, "InvalidAllocationID.") || strings.HasPrefix(code, "InvalidAddress."):
		return "check `elastic_ip`: an allocation id (eipalloc-…) or public IP allocated in " + region
	case code == "RequestLimitExceeded":
		return "EC2 kept throttling after retries: fewer calls (a longer heartbeat interval, fewer pools per account) or wait"
	case code == "IdempotentParameterMismatch":
		return "this slot was launched before with other settings; it will launch anew once that instance is gone"
	}
	return ""
}
