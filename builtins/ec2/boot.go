package ec2

// Boot waits: a launched instance is Starting until EC2 says it runs, and
// Failed if it does not within the pool's boot_timeout.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// watchBoot waits in the background, within the pool's boot timeout from
// the instance's launch, for it to run; one that does not is Failed.
func (p *Provider) watchBoot(pl *pool, poolName string, in types.Instance) {
	id := aws.ToString(in.InstanceId)
	p.mu.Lock()
	if p.boots[id] != nil {
		p.mu.Unlock()
		return
	}
	b := &boot{pool: poolName}
	p.boots[id] = b
	p.mu.Unlock()

	launched := time.Now()
	if in.LaunchTime != nil {
		launched = *in.LaunchTime
	}
	deadline := launched.Add(pl.spec.BootTimeout)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.waitRunning(pl.client, id, deadline, pl.spec.BootTimeout)
		if p.ctx.Err() != nil {
			return // closing: no verdict
		}
		p.mu.Lock()
		b.done, b.failed = true, err
		p.mu.Unlock()
		if err != nil {
			p.logf("ec2: pool %s: %s failed to boot: %v", poolName, id, err)
		}
	}()
}

func (p *Provider) waitRunning(c *client, id string, deadline time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	w := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.opts.WaiterMinDelay, p.opts.WaiterMaxDelay
	})
	input := &ec2.DescribeInstancesInput{InstanceIds: []string{id}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		err := w.Wait(ctx, input, left)
		switch {
		case err == nil:
			return nil
		case p.ctx.Err() != nil:
			return p.ctx.Err()
		case strings.Contains(err.Error(), "transitioned to Failure"):
			if why := p.whyEnded(c, id); why != "" {
				return errors.New("ended while booting: " + why)
			}
			return errors.New("stopped or terminated while booting")
		case strings.Contains(err.Error(), "exceeded max wait time") || !time.Now().Before(deadline):
			// The waiter gives up once less than MinDelay is left: wait
			// out the rest, then look once more.
			if !sleep(ctx, time.Until(deadline)) && p.ctx.Err() != nil {
				return p.ctx.Err()
			}
			continue
		}
		// Anything else (the network, throttling past the retryer's
		// patience) is no verdict on the instance: wait again.
		p.logf("ec2: waiting for %s to run: %v", id, err)
		sleep(ctx, min(p.opts.WaiterMinDelay, time.Until(deadline)))
	}
	if p.ctx.Err() != nil {
		return p.ctx.Err()
	}
	if p.runningNow(c, input) {
		return nil
	}
	return fmt.Errorf("not running %v after its launch (the boot timeout)", timeout)
}

// runningNow is one look at whether the instance runs.
func (p *Provider) runningNow(c *client, input *ec2.DescribeInstancesInput) bool {
	ctx, cancel := p.call(p.ctx)
	defer cancel()
	out, err := c.DescribeInstances(ctx, input)
	if err != nil {
		return false
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State == nil || in.State.Name != types.InstanceStateNameRunning {
				return false
			}
		}
	}
	return len(out.Reservations) > 0
}

// sleep waits for d or until ctx ends; it says whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
