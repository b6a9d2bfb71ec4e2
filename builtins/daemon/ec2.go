package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/ec2"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// ec2Spec reads a pool's `provider ec2 { … }` block. A user_data that
// names an existing file (relative to the policy file) is that file's
// content; otherwise it is the script itself.
func ec2Spec(d *lang.PoolDecl, b *lang.BlockDecl, dir string) (ec2.Spec, error) {
	var s ec2.Spec
	var err error
	if s.Port, err = poolPort(d); err != nil {
		return s, err
	}
	for _, set := range b.Settings {
		if set.Key.Name == "tags" {
			s.Tags = map[string]string{}
			for _, e := range set.Map.Entries {
				q, err := lang.Interpret(e.Value, lang.String)
				if err != nil {
					return s, err
				}
				s.Tags[e.Key.Name] = q.Str
			}
			continue
		}
		if len(set.Args) != 1 || set.Args[0].Value == nil {
			continue
		}
		q, err := lang.Interpret(set.Args[0].Value, lang.Invalid)
		if err != nil {
			return s, err
		}
		switch set.Key.Name {
		case "region":
			s.Region = q.Str
		case "image":
			s.Image = q.Str
		case "type":
			s.Type = q.Str
		case "keypair":
			s.KeyPair = q.Str
		case "subnet":
			s.Subnet = q.Str
		case "security_group":
			s.SecurityGroup = q.Str
		case "endpoint":
			s.Endpoint = q.Str
		case "elastic_ip":
			s.ElasticIP = q.Str
		case "boot_timeout":
			s.BootTimeout = q.Duration()
		case "user_data":
			s.UserData = q.Str
			path := q.Str
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
				data, err := os.ReadFile(path)
				if err != nil {
					return s, fmt.Errorf("user_data: %w", err)
				}
				s.UserData = string(data)
			} else if looksLikePath(q.Str) {
				// A typo must not boot machines with "./boot.sh" as their script.
				return s, fmt.Errorf("user_data %q: no such file (relative to %s): give the script's path, or the script itself starting with #! on its first line", q.Str, dir)
			}
		}
	}
	return s, nil
}

// looksLikePath says a user_data value is meant as a file: one line, a
// path's start or a script's extension, not a script (which starts with
// #! or has several lines).
func looksLikePath(s string) bool {
	if strings.Contains(s, "\n") || strings.HasPrefix(s, "#!") {
		return false
	}
	for _, p := range []string{"./", "../", "/", "~/"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return strings.HasSuffix(s, ".sh") || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml")
}

// ec2Pool is the ec2 provider as one pool sees it: a start that fails
// says where the pool is declared and what to do, in the decision log.
// Embedding the provider keeps its optional interfaces (runtime.Killer,
// heartbeat.Liveness).
type ec2Pool struct {
	*ec2.Provider
	pos lang.Pos
}

func (p ec2Pool) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	in, err := p.Provider.Start(ctx, pool, name)
	if err != nil {
		err = fmt.Errorf("%s: provider ec2: %w", p.pos, err)
		var e *ec2.Error
		if errors.As(err, &e) && e.Hint != "" {
			err = fmt.Errorf("%w (hint: %s)", err, e.Hint)
		}
	}
	return in, err
}

// elasticIP puts a primary pool's Elastic IP on its primary: a
// runtime.Balancer whose rotation is the one instance holding the address,
// and a runtime.Switcher that moves it in one AssociateAddress.
type elasticIP struct {
	prov *ec2.Provider
	pool string
}

func (b elasticIP) Add(ctx context.Context, in runtime.Instance) error {
	return b.prov.MoveAddress(ctx, b.pool, in)
}

// Drain, Fence and Remove leave the address where it is: it moves only to
// the next primary (Add, Switch), so it is never unassigned in between.
func (b elasticIP) Drain(context.Context, runtime.Instance) error  { return nil }
func (b elasticIP) Fence(context.Context, runtime.Instance) error  { return nil }
func (b elasticIP) Remove(context.Context, runtime.Instance) error { return nil }

func (b elasticIP) Switch(ctx context.Context, from, to runtime.Instance) error {
	return b.prov.MoveAddress(ctx, b.pool, to)
}

// bothBalancers drives a pool's HAProxy and its Elastic IP together.
type bothBalancers []runtime.Balancer

func (bs bothBalancers) each(f func(runtime.Balancer) error) error {
	var errs []error
	for _, b := range bs {
		errs = append(errs, f(b))
	}
	return errors.Join(errs...)
}

func (bs bothBalancers) Add(ctx context.Context, in runtime.Instance) error {
	return bs.each(func(b runtime.Balancer) error { return b.Add(ctx, in) })
}
func (bs bothBalancers) Drain(ctx context.Context, in runtime.Instance) error {
	return bs.each(func(b runtime.Balancer) error { return b.Drain(ctx, in) })
}
func (bs bothBalancers) Fence(ctx context.Context, in runtime.Instance) error {
	return bs.each(func(b runtime.Balancer) error { return b.Fence(ctx, in) })
}
func (bs bothBalancers) Remove(ctx context.Context, in runtime.Instance) error {
	return bs.each(func(b runtime.Balancer) error { return b.Remove(ctx, in) })
}

// Switch switches each; one that cannot is fenced from and given to.
func (bs bothBalancers) Switch(ctx context.Context, from, to runtime.Instance) error {
	return bs.each(func(b runtime.Balancer) error {
		if sw, ok := b.(runtime.Switcher); ok {
			return sw.Switch(ctx, from, to)
		}
		return errors.Join(b.Fence(ctx, from), b.Add(ctx, to))
	})
}

// strangerInterval is how often the daemon looks for instances tagged for
// pools the policy does not declare.
const strangerInterval = 5 * time.Minute

// watchStrangers logs, once each, the ec2 instances tagged for a pool the
// policy does not declare: never touched, but an operator should know
// (another deployment, a pool removed from the policy). It runs until ctx
// ends.
func (d *Daemon) watchStrangers(ctx context.Context, prov *ec2.Provider, pools []string) {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		list, err := prov.Strangers(cctx, pools)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.cfg.Log.Warn("ec2: look for stranger instances", "err", err)
		}
		for _, s := range list {
			if _, said := d.strangers.LoadOrStore(s.ID, true); !said { // once per daemon, not per reload
				d.cfg.Log.Warn("ec2: stranger instance: tagged for a pool this policy does not declare; left alone",
					"id", s.ID, "pool", s.Pool, "name", s.Name, "state", s.State, "region", s.Region)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(strangerInterval):
		}
	}
}
