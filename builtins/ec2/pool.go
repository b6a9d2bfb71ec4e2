package ec2

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// PoolProvider is the provider as one pool sees it: a start that fails
// says where the pool is declared and what to do, in the decision log.
// Embedding the provider keeps its optional interfaces (runtime.Killer,
// heartbeat.Liveness).
type PoolProvider struct {
	*Provider
	Pos lang.Pos // the pool's provider block
}

func (p PoolProvider) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	in, err := p.Provider.Start(ctx, pool, name)
	if err != nil {
		err = fmt.Errorf("%s: provider ec2: %w", p.Pos, err)
		var e *Error
		if errors.As(err, &e) && e.Hint != "" {
			err = fmt.Errorf("%w (hint: %s)", err, e.Hint)
		}
	}
	return in, err
}

// ElasticIP puts a primary pool's Elastic IP on its primary: a
// runtime.Balancer whose rotation is the one instance holding the address,
// and a runtime.Switcher that moves it in one AssociateAddress.
type ElasticIP struct {
	Provider *Provider
	Pool     string
}

func (b ElasticIP) Add(ctx context.Context, in runtime.Instance) error {
	return b.Provider.MoveAddress(ctx, b.Pool, in)
}

// Drain, Fence and Remove leave the address where it is: it moves only to
// the next primary (Add, Switch), so it is never unassigned in between.
func (b ElasticIP) Drain(context.Context, runtime.Instance) error  { return nil }
func (b ElasticIP) Fence(context.Context, runtime.Instance) error  { return nil }
func (b ElasticIP) Remove(context.Context, runtime.Instance) error { return nil }

func (b ElasticIP) Switch(ctx context.Context, from, to runtime.Instance) error {
	return b.Provider.MoveAddress(ctx, b.Pool, to)
}
