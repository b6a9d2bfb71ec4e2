package daemon

import (
	"fmt"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
)

// dialer returns the daemon's SSH dialer for cfg, with the daemon's known
// hosts; dialers (and their connections) are shared by the pools that log
// in the same way, and kept across reloads.
func (d *Daemon) dialer(cfg ssh.Config) (*ssh.Dialer, error) {
	cfg.KnownHosts, cfg.AcceptNew = d.cfg.KnownHosts, d.cfg.AcceptNew
	key := fmt.Sprintf("%s\x00%d\x00%s", cfg.User, cfg.Port, strings.Join(cfg.KeyFiles, "\x00"))
	d.mu.Lock()
	dl := d.dialers[key]
	d.mu.Unlock()
	if dl != nil {
		return dl, nil
	}
	// Made without d.mu: it may ask the SSH agent, which can be slow, and
	// the control socket's commands need d.mu meanwhile.
	dl, err := ssh.NewDialer(cfg)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if other := d.dialers[key]; other != nil { // made meanwhile
		dl.Close()
		return other, nil
	}
	if d.dialers == nil {
		d.dialers = map[string]*ssh.Dialer{}
	}
	d.dialers[key] = dl
	return dl, nil
}

// login says how the client logs in to a pool's instances for `instance
// ssh` (it dials itself, so the shell has its terminal).
func (d *Daemon) login(cfg ssh.Config) *control.SSHLogin {
	return &control.SSHLogin{User: cfg.User, Port: cfg.Port, KeyFiles: cfg.KeyFiles, KnownHosts: d.cfg.KnownHosts, AcceptNew: d.cfg.AcceptNew}
}

// sshProvider returns the provider of an ssh pool, and commit, which
// makes it the pool's once the whole program is wired (so a reload that is
// rejected later changes nothing the running engine uses). The provider is
// kept across reloads, with its hosts' assignments; a new one (the first
// start, or new login settings) takes the assignments the last engine
// saved.
func (d *Daemon) sshProvider(pool string, dl *ssh.Dialer, spec ssh.Spec) (prov *ssh.Provider, commit func() error, err error) {
	d.mu.Lock()
	p, ok := d.sshProviders[pool]
	d.mu.Unlock()
	if ok && p.dialer == dl {
		// The running engine's: check the hosts on a scratch provider now,
		// and change it only at commit.
		if err := ssh.NewProvider(dl).SetSpec(pool, spec); err != nil {
			return nil, nil, err
		}
		return p.Provider, func() error { return p.SetSpec(pool, spec) }, nil
	}
	p = sshPool{ssh.NewProvider(dl), dl}
	if err := p.SetSpec(pool, spec); err != nil {
		return nil, nil, err
	}
	if d.store == nil {
		// In a cluster the engine hands the provider each pool's instances
		// when it comes to lead it (runtime.Resumer).
	} else if s, err := d.store.Load(); err == nil && s != nil {
		if err := p.Restore(pool, s.Pools[pool].Instances); err != nil {
			return nil, nil, err
		}
	}
	return p.Provider, func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.sshProviders == nil {
			d.sshProviders = map[string]sshPool{}
		}
		d.sshProviders[pool] = p
		return nil
	}, nil
}

// sshPool is an ssh pool's provider and the dialer it was made with.
type sshPool struct {
	*ssh.Provider
	dialer *ssh.Dialer
}
