package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/console"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// CheckConsole refuses an HTTP endpoint open to the network without
// tokens, and console actions without them (an action names who asked).
func CheckConsole(cfg Config) error {
	if cfg.ConsoleActions && len(cfg.ConsoleTokens) == 0 {
		return errors.New("--console-actions needs --console-token-file FILE: every action from the page is recorded with who asked")
	}
	if cfg.Listen == "" || len(cfg.ConsoleTokens) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %s is not a loopback address: the console, /status and /metrics would be open to the network; give --console-token-file FILE (then every request needs a token), or listen on 127.0.0.1", cfg.Listen)
}

// startConsole mounts the console on mux and starts its sampler, which
// Stop ends.
func (d *Daemon) startConsole(mux *http.ServeMux) {
	cfg := console.Config{Source: consoleSource{d}, Tokens: d.cfg.ConsoleTokens, Log: d.cfg.Log}
	if d.cfg.ConsoleActions {
		cfg.Controls = consoleControls{d}
	}
	d.console = console.New(cfg)
	d.console.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	d.consoleStop, d.consoleDone = cancel, make(chan struct{})
	go func() { // owned by the daemon: stopConsole ends it
		defer close(d.consoleDone)
		d.console.Run(ctx)
	}()
}

// stopConsole ends the console's live streams (before the HTTP server's
// shutdown, which would wait for them) and its sampler.
func (d *Daemon) stopConsole() {
	if d.console == nil {
		return
	}
	d.console.Close()
	d.consoleStop()
	<-d.consoleDone
}

// consoleSource is what the console shows of the daemon.
type consoleSource struct{ d *Daemon }

func (s consoleSource) Status() runtime.Status { return s.d.Status() }

func (s consoleSource) Decisions() []decision.Decision {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return append([]decision.Decision(nil), s.d.recent...)
}

func (s consoleSource) Providers() map[string]string { return s.d.providerKinds() }

// consoleControls acts for the console as the commands do: on this
// daemon's engine, or in a cluster through the pool's leader.
type consoleControls struct{ d *Daemon }

func (c consoleControls) engine() commands.Engine {
	c.d.mu.Lock()
	e, prog := c.d.engine, c.d.prog
	c.d.mu.Unlock()
	if c.d.cl != nil {
		return c.d.clusterEngine(e, prog)
	}
	return e
}

func (c consoleControls) SetTarget(pool string, n int, why string) (int, error) {
	return c.engine().SetTarget(pool, n, why)
}

func (c consoleControls) MaintainInstance(ctx context.Context, name string, on bool, why string) (string, string, error) {
	return c.engine().MaintainInstance(ctx, name, on, why)
}
