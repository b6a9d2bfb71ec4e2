// Package s3 syncs file trees with S3 (aws-sdk-go-v2 and its transfer
// manager): `sync SRC to DST`, `every 1h sync …`, and a pool's storage.
// Each side is a local directory, an instance's directory (over SFTP) or
// s3://BUCKET/PREFIX. Only what changed moves; every object written is
// verified by checksum; a local file is replaced only once its new
// content is whole; nothing is ever deleted on the source side. The
// rules are in spec/language.md, "Sync".
//
// It knows S3 and file trees, not pools or schedules: when to sync, and
// what, is its callers' business.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// Defaults, chosen on a 2-core machine against a local S3 server and
// sized for a real one: enough requests in flight to hide latency, few
// enough not to be throttled or to hold much memory.
const (
	DefaultConcurrency = 16
	DefaultPartSize    = 16 << 20 // the multipart part size
	DefaultThreshold   = 16 << 20 // files this large or larger go up in parts
	defaultAttempts    = 3        // tries per file, after the SDK's own retries

	// requestTimeout bounds a request that moves no file data: a listing
	// page, a HEAD, a DELETE, an abort.
	requestTimeout = 1 * time.Minute
	// transferTimeout bounds a request that moves one file below the
	// multipart threshold, or one part.
	transferTimeout = 15 * time.Minute
	// idleTimeout ends a download that has received nothing for so long;
	// a large object may take hours, a stalled one is given up.
	idleTimeout = 2 * time.Minute
)

// Config is how to reach S3 and how hard to push it.
type Config struct {
	// Endpoint is an S3-compatible server's URL. Empty: the SDK's
	// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS itself.
	Endpoint string
	// PathStyle addresses buckets as ENDPOINT/BUCKET rather than
	// BUCKET.ENDPOINT, as most S3-compatible servers need. Nil: on when
	// an endpoint is overridden and is not AWS's own (as awscli does).
	PathStyle *bool
	// Region, else the standard chain's (AWS_REGION, the profile), else
	// us-east-1.
	Region      string
	Concurrency int   // files in flight; default DefaultConcurrency
	PartSize    int64 // default DefaultPartSize; at least 5 MiB
	Threshold   int64 // default DefaultThreshold
	// StateDir keeps what syncs remember: the journals of multipart
	// uploads in flight (s3-uploads/, see journal) and the checksums of
	// local files (s3-sums/, see sumCache). Empty: memory only.
	StateDir string
}

// Client syncs with S3. It is safe for concurrent use.
type Client struct {
	cfg      Config
	s3       *s3.Client
	endpoint string // the override in effect, for messages
	journal  *journal
	retry    time.Duration // the first pause between tries of a file; tests shorten it
	now      func() time.Time
	// parts bounds the files going up in parts at once: each holds a few
	// parts in memory (the transfer manager's buffers).
	parts chan struct{}
}

// New makes a client from the standard AWS chain (environment, shared
// config and credentials files, SSO, instance role) and cfg. Credentials
// are not checked here: the first request does, with a clear error.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("part size %d is below S3's minimum of 5 MiB", cfg.PartSize)
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		// One idle connection kept per worker and part upload: without
		// it the transport closes and redials most connections.
		t.MaxIdleConnsPerHost = 2 * cfg.Concurrency
		t.ResponseHeaderTimeout = requestTimeout
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryMaxAttempts(5),
		// The SDK logs skipped checksum checks (multipart objects) at
		// each download; the sync does its own checks and says so.
		config.WithLogger(logging.Nop{}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	awsCfg, err := config.LoadDefaultConfig(lctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("S3 endpoint %q is not a URL like http://127.0.0.1:7070", redact(endpoint))
		}
	}
	pathStyle := endpoint != "" && !strings.Contains(endpoint, ".amazonaws.com")
	if cfg.PathStyle != nil {
		pathStyle = *cfg.PathStyle
	}
	cli := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = pathStyle
		// Checksums are the sync's business: it sends Content-MD5 or a
		// whole-object CRC32 it computed, so the server verifies what it
		// stores, and checks the answer (see upload).
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Client{cfg: cfg, s3: cli, endpoint: endpoint, journal: newJournal(journalDir(cfg.StateDir)), retry: time.Second, now: time.Now,
		parts: make(chan struct{}, 2)}, nil
}

// journalDir is where the journals of multipart uploads live.
func journalDir(stateDir string) string {
	if stateDir == "" {
		return ""
	}
	return filepath.Join(stateDir, "s3-uploads")
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// Error is a failed S3 request, said plainly: what was asked, of which
// location, S3's code, and what to do about it. It never holds a secret.
type Error struct {
	Op       string // "list", "upload www/a.txt", …
	Location string // s3://bucket/prefix
	Code     string // S3's error code, when it gave one
	Message  string
	Hint     string
	Err      error // the SDK's error
}

func (e *Error) Error() string {
	s := e.Op + " " + e.Location + ": "
	if e.Code != "" {
		s += e.Code + ": "
	}
	s += e.Message
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// describe turns an SDK error into an *Error with a hint. It keeps
// context errors as they are, so callers can tell a cancelled sync.
func (c *Client) describe(op string, loc Location, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Op: op, Location: loc.String(), Message: err.Error(), Err: err}
	var ae smithy.APIError
	var oe *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &ae):
		e.Code, e.Message = ae.ErrorCode(), ae.ErrorMessage()
		if e.Message == "" {
			e.Message = strings.TrimSpace(ae.Error())
		}
		e.Hint = hints[e.Code]
		if e.Code == "NoSuchBucket" || e.Code == "NotFound" && strings.HasPrefix(op, "list") {
			e.Code, e.Message = "NoSuchBucket", fmt.Sprintf("bucket %q does not exist", loc.Bucket)
			e.Hint = fmt.Sprintf("create it (aws s3 mb s3://%s), or check the name, the region and the endpoint", loc.Bucket)
		}
	case strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "failed to refresh cached credentials"):
		e.Message = "no AWS credentials found"
		e.Hint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run on an instance with a role"
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = "timed out"
		e.Hint = "the server is slow or unreachable: " + c.where()
	case errors.As(err, &oe) && oe.Op == "dial", errors.As(err, &dnsErr):
		// Only a connection that cannot be made: one dropped midway is
		// retried (see retryable).
		e.Message = "cannot reach " + c.where() + ": " + rootCause(err)
		e.Hint = "is the server up? the endpoint comes from --endpoint, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL"
	}
	return e
}

func (c *Client) where() string {
	if c.endpoint != "" {
		return redact(c.endpoint)
	}
	return "AWS S3"
}

// redact drops a URL's user information (http://user:secret@host).
func redact(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint
	}
	u.User = nil
	return u.String()
}

// rootCause is the innermost error's text: "connection refused" rather
// than the SDK's chain of operation, attempt and URL.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

var hints = map[string]string{
	"InvalidAccessKeyId":           "the server does not know this access key: check AWS_ACCESS_KEY_ID or the profile",
	"XAdminUserNotFound":           "the server does not know this access key: check AWS_ACCESS_KEY_ID or the profile", // versitygw's InvalidAccessKeyId
	"SignatureDoesNotMatch":        "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY or the profile",
	"AccessDenied":                 "these credentials may not do this: the policy needs s3:ListBucket, s3:GetObject, s3:PutObject (and s3:DeleteObject for --delete)",
	"InvalidBucketName":            "bucket names are 3 to 63 lowercase letters, digits, '.' and '-'",
	"BadDigest":                    "the data arrived different from what was sent (or the file changed while it was read)",
	"PermanentRedirect":            "the bucket is in another region: set AWS_REGION to it",
	"AuthorizationHeaderMalformed": "the region is wrong for this bucket: set AWS_REGION to the bucket's",
	"SlowDown":                     "S3 is throttling: lower --concurrency",
	"ExpiredToken":                 "the session credentials have expired: log in again (aws sso login)",
	"RequestTimeTooSkewed":         "this machine's clock is off: fix it (NTP)",
}
