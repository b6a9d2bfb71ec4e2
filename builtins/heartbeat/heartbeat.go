// Package heartbeat is the probe behind `heartbeat every D timeout T`: it
// asks the provider whether the instance is alive at all (its process, for
// local), then checks that it answers on its address, with the balancer's
// HTTP health check when the pool has one, else a TCP connect. The runtime
// decides what a run of failed probes means (runtime/heartbeat.go); this
// package only probes, each probe bounded by its context.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Liveness is what a provider knows of an instance without reaching it:
// whether its process runs (local) or its machine is up (ec2). An error
// wrapping runtime.ErrGone says it never will again.
type Liveness interface {
	Alive(ctx context.Context, inst runtime.Instance) error
}

// Probe checks one pool's instances: runtime.Prober.
type Probe struct {
	// Liveness, if set, is asked first.
	Liveness Liveness
	// HTTPPath, if set, is requested from each instance (GET, a new
	// connection each time); an answer of 2xx or 3xx is a success, as for
	// HAProxy's checks. Without it, a TCP connect is the check.
	HTTPPath string

	client *http.Client
}

// New returns a probe; httpPath is "" for a TCP check.
func New(live Liveness, httpPath string) *Probe {
	return &Probe{Liveness: live, HTTPPath: httpPath, client: &http.Client{
		// A fresh connection each time: a pooled one could hide an
		// instance that no longer accepts new ones.
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		// 3xx is healthy, as for HAProxy: never follow it elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Probe checks inst within ctx's deadline.
func (p *Probe) Probe(ctx context.Context, inst runtime.Instance) error {
	if p.Liveness != nil {
		if err := p.Liveness.Alive(ctx, inst); err != nil {
			return err
		}
	}
	if inst.Addr == "" {
		return errors.New("no address to check")
	}
	if _, _, err := net.SplitHostPort(inst.Addr); err != nil && p.Liveness != nil {
		// A pool without a port (an ec2 or ssh pool serving nothing the
		// policy names): the provider's answer is the whole check.
		return nil
	}
	if p.HTTPPath == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", inst.Addr)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", inst.Addr, brief(ctx, err))
		}
		c.Close()
		return nil
	}
	u := (&url.URL{Scheme: "http", Host: inst.Addr, Path: p.HTTPPath}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "cloudspeak-heartbeat")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, brief(ctx, err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// brief shortens a network error to what an operator needs: "connection
// refused", "no answer in time".
func brief(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("no answer in time")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
