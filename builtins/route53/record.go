// Package route53 is `balancer route53`: a primary pool's address is a
// DNS record in an Amazon Route 53 hosted zone, UPSERTed to the new
// primary's IP on failover, the change then waited for until Route 53
// reports it INSYNC (on all its authoritative servers). It is shaped like
// ec2's ElasticIP: a runtime.Balancer whose rotation is the one instance
// the record names, and a runtime.Switcher that moves it in one change.
// Credentials come from the standard AWS chain and are never logged.
package route53

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Options tune a Record; the zero value is what the daemon uses.
type Options struct {
	Log *slog.Logger
	// Go runs the rest of a wait that outlives the call that started it
	// (a change still PENDING when half the caller's time is spent) on
	// behalf of the Record's owner, until its context ends; nil leaves
	// such a change unwatched (its id is logged).
	Go func(f func(ctx context.Context))
	// PollMin and PollMax bound the delay between GetChange calls, which
	// doubles from one to the other; default 1s and 5s.
	PollMin, PollMax time.Duration
	// Wait bounds the wait for INSYNC; default 3m (Route 53 usually takes
	// under a minute).
	Wait time.Duration
	// CallTimeout bounds each API call, retries included; default 30s.
	CallTimeout time.Duration
}

// Record is a pool's Route 53 record: runtime.Balancer and
// runtime.Switcher.
type Record struct {
	pool   string
	cfg    Config
	opts   Options
	client *route53.Client

	mu     sync.Mutex
	zoneID string // resolved once
}

// New makes the pool's record driver, with a client from the AWS chain.
// It makes no call: Resolve finds the zone.
func New(ctx context.Context, pool string, cfg Config, opts Options) (*Record, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PollMin <= 0 {
		opts.PollMin = time.Second
	}
	if opts.PollMax < opts.PollMin {
		opts.PollMax = max(5*time.Second, opts.PollMin)
	}
	if opts.Wait <= 0 {
		opts.Wait = 3 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	var load []func(*config.LoadOptions) error
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	cctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	defer cancel()
	awsCfg, err := config.LoadDefaultConfig(cctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration (environment, AWS_PROFILE, ~/.aws/config): %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1" // Route 53 is global: the region only signs
	}
	client := route53.NewFromConfig(awsCfg, func(o *route53.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	r := &Record{pool: pool, cfg: cfg, opts: opts, client: client}
	if !ZoneIsName(cfg.Zone) {
		r.zoneID = strings.TrimPrefix(cfg.Zone, "/hostedzone/")
	}
	return r, nil
}

// Add points the record at in: the pool's first primary, or its primary
// after a restart or a promotion without a switch.
func (r *Record) Add(ctx context.Context, in runtime.Instance) error { return r.Point(ctx, in) }

// Switch points the record at to, in one change: runtime.Switcher.
func (r *Record) Switch(ctx context.Context, from, to runtime.Instance) error {
	return r.Point(ctx, to)
}

// Drain, Fence and Remove leave the record where it is: it moves only to
// the next primary (Add, Switch), so the name never stops resolving.
func (r *Record) Drain(context.Context, runtime.Instance) error  { return nil }
func (r *Record) Fence(context.Context, runtime.Instance) error  { return nil }
func (r *Record) Remove(context.Context, runtime.Instance) error { return nil }

// Point UPSERTs the record (A for an IPv4 address, AAAA for IPv6) to in's
// IP and waits until Route 53 reports the change INSYNC: within what is
// left of ctx, keeping half of it for the caller's other calls; a change
// still PENDING then is watched in the background (Options.Go). The
// record has changed once Route 53 accepted the change, so only a refused
// change, or one not in sync within Options.Wait, is an error.
func (r *Record) Point(ctx context.Context, in runtime.Instance) error {
	ip, err := hostIP(in)
	if err != nil {
		return err
	}
	zone, err := r.Resolve(ctx)
	if err != nil {
		return err
	}
	typ := types.RRTypeA
	if ip.To4() == nil {
		typ = types.RRTypeAaaa
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	out, err := r.client.ChangeResourceRecordSets(cctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{
			Comment: aws.String(fmt.Sprintf("cloudspeak: pool %s: primary %s", r.pool, in.Name)),
			Changes: []types.Change{{Action: types.ChangeActionUpsert, ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String(r.cfg.Name), Type: typ, TTL: aws.Int64(int64(r.cfg.TTL / time.Second)),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String(ip.String())}},
			}}},
		},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("route53: point %s at %s (%s): %w", r.cfg.Name, in.Name, ip, wrap("ChangeResourceRecordSets", err))
	}
	if out.ChangeInfo == nil {
		return fmt.Errorf("route53: point %s at %s (%s): Route 53 answered without the change's ID", r.cfg.Name, in.Name, ip)
	}
	id := aws.ToString(out.ChangeInfo.Id)
	log := r.opts.Log.With("pool", r.pool, "record", r.cfg.Name, "type", string(typ), "ip", ip.String(), "instance", in.Name, "change", id)
	log.Info("route53: record upserted", "status", string(out.ChangeInfo.Status))
	if out.ChangeInfo.Status == types.ChangeStatusInsync {
		log.Info("route53: change in sync", "after", time.Since(start).Round(time.Millisecond))
		return nil
	}
	return r.waitInSync(ctx, id, start, log)
}

// waitInSync waits for change id to be INSYNC, within half of what is
// left of ctx (the engine's call shares its deadline with the tick's other
// calls); then hands the wait over to Options.Go.
func (r *Record) waitInSync(ctx context.Context, id string, start time.Time, log *slog.Logger) error {
	deadline := start.Add(r.opts.Wait)
	handOff := false
	if d, ok := ctx.Deadline(); ok && time.Now().Add(time.Until(d)/2).Before(deadline) {
		deadline, handOff = time.Now().Add(time.Until(d)/2), true
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	err := r.poll(wctx, id)
	cancel()
	switch {
	case err == nil:
		log.Info("route53: change in sync", "after", time.Since(start).Round(time.Millisecond))
		return nil
	case handOff && ctx.Err() == nil && r.opts.Go != nil:
		log.Info("route53: change still pending; watching it", "after", time.Since(start).Round(time.Millisecond))
		r.opts.Go(func(bctx context.Context) {
			wctx, cancel := context.WithDeadline(bctx, start.Add(r.opts.Wait))
			defer cancel()
			if err := r.poll(wctx, id); err != nil {
				if bctx.Err() == nil {
					log.Warn("route53: change not in sync", "after", time.Since(start).Round(time.Millisecond), "err", err)
				}
				return
			}
			log.Info("route53: change in sync", "after", time.Since(start).Round(time.Millisecond))
		})
		return nil
	case handOff && ctx.Err() == nil:
		log.Warn("route53: change still pending; not watched further", "after", time.Since(start).Round(time.Millisecond))
		return nil
	}
	return fmt.Errorf("route53: change %s for %s: not in sync after %s: %w", id, r.cfg.Name, time.Since(start).Round(100*time.Millisecond), err)
}

// poll asks GetChange until the change is INSYNC or ctx ends, the delay
// doubling from PollMin to PollMax. A failed GetChange is tried again; its
// error is returned if ctx ends first.
func (r *Record) poll(ctx context.Context, id string) error {
	delay := r.opts.PollMin
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		out, err := r.client.GetChange(cctx, &route53.GetChangeInput{Id: aws.String(id)})
		cancel()
		switch {
		case err == nil && out.ChangeInfo == nil:
			last = errors.New("Route 53 answered GetChange without the change")
		case err == nil && out.ChangeInfo.Status == types.ChangeStatusInsync:
			return nil
		case err == nil:
			last = fmt.Errorf("still %s", out.ChangeInfo.Status)
		case ctx.Err() != nil && last != nil:
			return last // the call cut short says less than the answer before it
		default:
			last = wrap("GetChange", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
		delay = min(2*delay, r.opts.PollMax)
	}
}

// hostIP is the IP of an instance's address (HOST:PORT, or HOST).
func hostIP(in runtime.Instance) (net.IP, error) {
	host := in.Addr
	if h, _, err := net.SplitHostPort(in.Addr); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("route53: %s's address %q is not an IP address: an A or AAAA record needs one", in.Name, in.Addr)
	}
	return ip, nil
}

// Resolve returns the hosted zone's id, looking a zone given by name up
// once (ListHostedZonesByName). A *ZoneError says Route 53 answered that
// the name is no zone, or several, or that the record is outside it.
func (r *Record) Resolve(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.zoneID != "" {
		return r.zoneID, nil
	}
	name := canonical(r.cfg.Zone)
	if rec := canonical(r.cfg.Name); rec != name && !strings.HasSuffix(rec, "."+name) {
		return "", &ZoneError{Zone: r.cfg.Zone, Msg: fmt.Sprintf("the record %s is not in the zone", r.cfg.Name),
			Hint: "name the record with the zone's name at its end, e.g. db." + name}
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	out, err := r.client.ListHostedZonesByName(cctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String(name), MaxItems: aws.Int32(100)})
	if err != nil {
		return "", fmt.Errorf("route53: find the hosted zone %s: %w", name, wrap("ListHostedZonesByName", err))
	}
	var ids []string
	for _, z := range out.HostedZones {
		if canonical(aws.ToString(z.Name)) == name {
			kind := "public"
			if z.Config != nil && z.Config.PrivateZone {
				kind = "private"
			}
			ids = append(ids, strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")+" ("+kind+")")
		}
	}
	switch len(ids) {
	case 0:
		return "", &ZoneError{Zone: r.cfg.Zone, Msg: "no hosted zone has this name",
			Hint: "check the zone's name (aws route53 list-hosted-zones), and that the AWS chain's account holds it"}
	case 1:
		r.zoneID, _, _ = strings.Cut(ids[0], " ")
		r.opts.Log.Info("route53: zone found", "pool", r.pool, "zone", name, "id", r.zoneID)
		return r.zoneID, nil
	}
	return "", &ZoneError{Zone: r.cfg.Zone, Msg: fmt.Sprintf("%d hosted zones have this name: %s", len(ids), strings.Join(ids, ", ")),
		Hint: "give the zone's id instead of its name: zone \"Z…\""}
}

// canonical is a domain name in lower case, with its final dot.
func canonical(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) + "." }

// ZoneError is a zone setting Route 53 cannot resolve: the policy's error.
type ZoneError struct {
	Zone, Msg, Hint string
}

func (e *ZoneError) Error() string { return fmt.Sprintf("route53: zone %q: %s", e.Zone, e.Msg) }

// wrap names the API call, and adds what to do for the errors a user can
// fix. Route 53's messages name no secret, and nothing here adds one.
func wrap(op string, err error) error {
	var ae interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if !errors.As(err, &ae) {
		return fmt.Errorf("route53 %s: %w", op, err)
	}
	hint := ""
	switch code := ae.ErrorCode(); {
	case code == "NoSuchHostedZone":
		hint = "check the zone setting: aws route53 list-hosted-zones lists the account's zones"
	case code == "InvalidChangeBatch":
		hint = "Route 53 refused the record: check that its name is in the zone, and that no CNAME of that name exists"
	case code == "AccessDenied" || code == "AccessDeniedException":
		hint = "the identity the AWS chain found needs route53:ChangeResourceRecordSets, route53:GetChange and route53:ListHostedZonesByName"
	case code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" || code == "UnrecognizedClientException":
		hint = "check the credentials the AWS chain found: AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials and ~/.aws/config; and that this machine's clock is right"
	case code == "Throttling" || code == "PriorRequestNotComplete":
		hint = "Route 53 limits the rate of changes to a zone: the next failover or restart tries again"
	}
	return &apiError{op: op, code: ae.ErrorCode(), msg: ae.ErrorMessage(), hint: hint, err: err}
}

// apiError is an error Route 53 answered, in words a user can act on; it
// wraps the SDK's (with its request id).
type apiError struct {
	op, code, msg, hint string
	err                 error
}

func (e *apiError) Error() string {
	s := "route53 " + e.op + ": " + e.code + ": " + e.msg
	if e.hint != "" {
		s += " (hint: " + e.hint + ")"
	}
	return s
}

func (e *apiError) Unwrap() error { return e.err }
