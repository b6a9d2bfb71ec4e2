package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// The daemons of a cluster run one policy, the one published in etcd
// (cluster.Policy): the files a daemon was started with, or reloaded, and
// the statements declared at a REPL on any of them. What runs is always
// the cluster's copy, never a daemon's own files, so all run the same:
//
//   - the first daemon publishes its files; a daemon started with other
//     files than the cluster's is refused (or, with --publish, replaces
//     the cluster's policy with them); one started with none runs the
//     cluster's;
//   - SIGHUP on a daemon whose files changed publishes them (with the
//     statements declared at REPLs, as a single daemon keeps them), if its
//     files were the cluster's before (a daemon whose files are older
//     than the cluster's cannot undo a newer policy): every daemon runs
//     them; --publish replaces files and declarations alike;
//   - a declaration at the REPL is published with the policy it was
//     checked against, or refused if that changed meanwhile;
//   - a daemon that cannot run a published policy (it checks, but its
//     wiring fails here) leads no pool until it can: the others share
//     the pools out among themselves.

// clusterPolicy is what a daemon knows of the cluster's policy; guarded
// by reloadMu.
type clusterPolicy struct {
	files []lang.Source // the cluster's policy files, as published
	rev   int64         // the revision this daemon runs; 0 for none
	// base is the digest of the cluster's files when this daemon's own
	// files were last the same: a reload may publish only over those.
	base string
}

// ErrStalePolicy is a reload refused because the daemon's files are not
// based on the cluster's policy.
var ErrStalePolicy = errors.New("this daemon's policy files are not the cluster's")

func readFiles(paths []string) ([]lang.Source, error) {
	var out []lang.Source
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, lang.Source{Name: p, Src: data})
	}
	return out, nil
}

func toCluster(files []lang.Source) []cluster.Source {
	out := make([]cluster.Source, len(files))
	for i, f := range files {
		out[i] = cluster.Source{Name: f.Name, Src: string(f.Src)}
	}
	return out
}

func fromCluster(srcs []cluster.Source) []lang.Source {
	out := make([]lang.Source, len(srcs))
	for i, s := range srcs {
		out[i] = lang.Source{Name: s.Name, Src: []byte(s.Src)}
	}
	return out
}

func sessionToCluster(s session) []cluster.Source {
	out := make([]cluster.Source, len(s))
	for i, x := range s {
		out[i] = cluster.Source{Name: x.src.Name, Src: string(x.src.Src), Session: x.key}
	}
	return out
}

func sessionFromCluster(srcs []cluster.Source) session {
	out := make(session, len(srcs))
	for i, s := range srcs {
		out[i] = sessionSource{key: s.Session, src: lang.Source{Name: s.Name, Src: []byte(s.Src)}}
	}
	return out
}

// describe names a published policy for messages.
func describe(rev int64, p *cluster.Policy) string {
	return fmt.Sprintf("rev %d, published by %s at %s", rev, p.By, p.At.Format(time.RFC3339))
}

// differing names the files that differ between two sets.
func differing(mine, theirs []cluster.Source) string {
	have := map[string]string{}
	for _, s := range theirs {
		have[filepath.Base(s.Name)] = s.Src
	}
	var out []string
	for _, s := range mine {
		src, ok := have[filepath.Base(s.Name)]
		switch {
		case !ok:
			out = append(out, s.Name+" (not in the cluster's)")
		case src != s.Src:
			out = append(out, s.Name)
		}
		delete(have, filepath.Base(s.Name))
	}
	for name := range have {
		out = append(out, name+" (only in the cluster's)")
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// joinPolicy settles which policy a daemon joining the cluster runs (see
// above) and returns it, checked, with its revision. own are the daemon's
// policy files, as Start read and checked them; publish replaces the
// cluster's policy with them.
func (d *Daemon) joinPolicy(ctx context.Context, own []*lang.File, publish bool) ([]*lang.File, *lang.Info, int64, error) {
	disk := make([]lang.Source, len(own))
	for i, f := range own {
		disk[i] = lang.Source{Name: f.Name, Src: f.Src}
	}
	mine := toCluster(disk)
	for range 3 { // a daemon publishing at the same moment: read again
		p, rev, err := d.cl.node.Policy(ctx)
		if err != nil {
			return nil, nil, 0, err
		}
		same := p != nil && cluster.Digest(mine) == cluster.Digest(p.Files)
		switch {
		case p == nil && len(disk) == 0:
			d.cfg.Log.Info("cluster: no policy published yet; waiting for one")
			return nil, nil, 0, nil
		case p == nil || (publish && !same):
			base := rev
			rev, err = d.cl.node.PublishPolicy(ctx, cluster.Policy{Files: mine}, base)
			if errors.Is(err, cluster.ErrPolicyMoved) {
				continue
			}
			if err != nil {
				return nil, nil, 0, err
			}
			d.cfg.Log.Info("cluster: published this daemon's policy files", "rev", rev, "files", d.cfg.Policies)
			p = &cluster.Policy{Files: mine}
		case len(disk) > 0 && !same:
			return nil, nil, 0, fmt.Errorf("%w: the cluster %s runs its policy (%s), and these files differ: %s\n"+
				"hint: start with the cluster's files, or with no policy file to run the cluster's; "+
				"send SIGHUP to a daemon whose files were the cluster's to publish a change; "+
				"or start this one with --publish to replace the cluster's policy with these files",
				ErrStalePolicy, d.cfg.Cluster.Name, describe(rev, p), differing(mine, p.Files))
		}
		files, info, err := d.loadCluster(rev, p)
		if err != nil {
			return nil, nil, 0, err
		}
		d.cl.policy.files = fromCluster(p.Files)
		if len(disk) > 0 {
			d.cl.policy.base = cluster.Digest(p.Files)
		}
		d.session = sessionFromCluster(p.Declared)
		return files, info, rev, nil
	}
	return nil, nil, 0, fmt.Errorf("cluster: the policy keeps changing under this daemon; try again")
}

// loadCluster checks a published policy.
func (d *Daemon) loadCluster(rev int64, p *cluster.Policy) ([]*lang.File, *lang.Info, error) {
	srcs := append(fromCluster(p.Files), fromCluster(p.Declared)...)
	files, info, err := loadSources(srcs)
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster's policy (%s) does not check here: %w", describe(rev, p), err)
	}
	return files, info, nil
}

// runAt starts the engine on prog as the cluster's policy rev. The node
// says it runs rev first, so the units are shared with the right peers
// from the start. If the engine cannot start, this daemon refuses rev.
// The caller holds reloadMu.
func (d *Daemon) runAt(rev int64, files []*lang.File, prog *runtime.Program) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.cl.node.SetPolicy(ctx, rev); err != nil {
		d.cfg.Log.Warn("cluster: could not say which policy this daemon runs; its next session will", "err", err)
	}
	if err := d.startEngine(files, prog); err != nil {
		d.refuse(rev)
		return err
	}
	d.cl.policy.rev = rev
	return nil
}

// refuse records that this daemon cannot run the cluster's policy rev:
// it leads no pool, and says it refused rev (a revision no daemon runs,
// so the others share the pools out without it) until it can. The
// caller holds reloadMu.
func (d *Daemon) refuse(rev int64) {
	d.cl.node.SetUnits(nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.cl.node.SetPolicy(ctx, -rev)
}

// runClusterPolicy runs a policy published by another daemon (or read
// again on SIGHUP). If it cannot run here, this daemon lets its pools go
// until it can. The caller holds reloadMu.
func (d *Daemon) runClusterPolicy(rev int64, p *cluster.Policy) error {
	files, info, err := d.loadCluster(rev, p)
	if err == nil {
		var prog *runtime.Program
		if prog, err = runtime.Compile(files, info, time.Local); err == nil {
			err = d.runAt(rev, files, prog)
		}
	}
	if err != nil {
		d.refuse(rev)
		d.met.reloads.WithLabelValues("rejected").Inc()
		d.cfg.Log.Error("cluster: cannot run the cluster's policy here: this daemon leads no pool until it can (fix the cause, then send SIGHUP)",
			"policy", describe(rev, p), "err", err)
		return err
	}
	d.cl.policy.files = fromCluster(p.Files)
	d.mu.Lock()
	d.session = sessionFromCluster(p.Declared)
	d.mu.Unlock()
	d.met.reloads.WithLabelValues("ok").Inc()
	d.cfg.Log.Info("cluster: running the cluster's policy", "policy", describe(rev, p))
	return nil
}

// rollBack publishes old again over rev, which this daemon published but
// cannot run: what cannot run on the daemon that checked it would likely
// fail everywhere, and leave every pool without a leader. The caller
// holds reloadMu.
func (d *Daemon) rollBack(ctx context.Context, rev int64, old cluster.Policy, err error) error {
	if _, perr := d.cl.node.PublishPolicy(ctx, old, rev); perr != nil {
		return fmt.Errorf("published as rev %d, but it cannot run here (this daemon leads no pool until it can; rolling back failed: %v): %w", rev, perr, err)
	}
	d.cfg.Log.Error("cluster: a policy this daemon published cannot run here: the previous one is published again", "rev", rev, "err", err)
	return fmt.Errorf("published as rev %d, but it cannot run here, so the previous policy was published again: %w", rev, err)
}

// followPolicy runs each policy the cluster publishes, until ctx ends.
func (d *Daemon) followPolicy(ctx context.Context, from int64) {
	d.cl.node.WatchPolicy(ctx, from, func(rev int64, p *cluster.Policy) {
		d.reloadMu.Lock()
		defer d.reloadMu.Unlock()
		if rev <= d.cl.policy.rev || ctx.Err() != nil {
			return // this daemon's own publication, already running
		}
		d.runClusterPolicy(rev, p)
	})
}

// reloadCluster is SIGHUP in a cluster: it publishes this daemon's files
// if they changed (and were the cluster's before), or runs the cluster's
// policy again if this daemon could not. The caller holds reloadMu.
func (d *Daemon) reloadCluster() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	disk, err := readFiles(d.cfg.Policies)
	if err != nil {
		return err
	}
	mine := toCluster(disk)
	p, rev, err := d.cl.node.Policy(ctx)
	if err != nil {
		return err
	}
	// Nothing to publish: no files, the cluster's files, or files left
	// as they were when they last were the cluster's (this daemon just
	// runs the cluster's policy again, if it could not).
	unchanged := p != nil && cluster.Digest(mine) == d.cl.policy.base
	if len(disk) == 0 || unchanged || (p != nil && cluster.Digest(mine) == cluster.Digest(p.Files)) {
		if p == nil {
			return nil
		}
		if len(disk) > 0 && cluster.Digest(mine) == cluster.Digest(p.Files) {
			d.cl.policy.base = cluster.Digest(p.Files)
		}
		if rev != d.cl.policy.rev {
			return d.runClusterPolicy(rev, p)
		}
		d.cfg.Log.Info("cluster: this daemon runs the cluster's policy already", "policy", describe(rev, p))
		return nil
	}
	if p != nil && d.cl.policy.base != cluster.Digest(p.Files) {
		return fmt.Errorf("reload refused: %w: the cluster runs %s, which these files were not (they differ in %s); "+
			"publishing them would undo it\nhint: bring this machine's policy files to the cluster's first, then change them and send SIGHUP again",
			ErrStalePolicy, describe(rev, p), differing(mine, p.Files))
	}
	// The statements declared at REPLs stay, checked with the new files,
	// as a single daemon keeps them across a reload.
	var declared []cluster.Source
	if p != nil {
		declared = p.Declared
	}
	files, info, err := loadSources(append(slices.Clone(disk), fromCluster(declared)...))
	if err != nil {
		return err
	}
	prog, err := runtime.Compile(files, info, time.Local)
	if err != nil {
		return err
	}
	newRev, err := d.cl.node.PublishPolicy(ctx, cluster.Policy{Files: mine, Declared: declared}, rev)
	if err != nil {
		return fmt.Errorf("reload refused: %w; send SIGHUP again to publish over it", err)
	}
	d.cfg.Log.Info("cluster: published the changed policy files", "rev", newRev, "files", d.cfg.Policies)
	if err := d.runAt(newRev, files, prog); err != nil {
		var old cluster.Policy // none before: an empty one
		if p != nil {
			old = *p
		}
		return d.rollBack(ctx, newRev, old, err)
	}
	d.cl.policy.files, d.cl.policy.base = disk, cluster.Digest(mine)
	d.mu.Lock()
	d.session = sessionFromCluster(declared)
	d.mu.Unlock()
	d.met.reloads.WithLabelValues("ok").Inc()
	return nil
}

// declareCluster publishes the cluster's policy with session as its
// declared statements, then runs it: a declaration at a REPL on any
// daemon. The caller holds reloadMu and has checked it.
func (d *Daemon) declareCluster(session session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, info, err := loadSources(append(slices.Clone(d.cl.policy.files), session.sources()...))
	if err != nil {
		return err
	}
	prog, err := runtime.Compile(files, info, time.Local)
	if err != nil {
		return err
	}
	rev, err := d.cl.node.PublishPolicy(ctx, cluster.Policy{Files: toCluster(d.cl.policy.files), Declared: sessionToCluster(session)}, d.cl.policy.rev)
	if errors.Is(err, cluster.ErrPolicyMoved) {
		return fmt.Errorf("declaration refused: %w (another daemon published one); it runs here in a moment: declare again", err)
	}
	if err != nil {
		return err
	}
	if err := d.runAt(rev, files, prog); err != nil {
		d.mu.Lock()
		old := cluster.Policy{Files: toCluster(d.cl.policy.files), Declared: sessionToCluster(d.session)}
		d.mu.Unlock()
		return d.rollBack(ctx, rev, old, err)
	}
	d.mu.Lock()
	d.session = session
	d.mu.Unlock()
	return nil
}
