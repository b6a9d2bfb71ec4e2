package ec2

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// The volume journal: the step a pool's volume is in the middle of, kept
// in StateDir/ec2-volumes.json (0600) from before the step is asked of EC2
// until a describe has confirmed it. A restarted daemon settles each step
// left there (settle) before the pool's volumes are touched again.

const journalFile = "ec2-volumes.json"

// step is one volume operation under way.
type step struct {
	Op       string    `json:"op"` // create, detach or attach
	Volume   string    `json:"volume,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Device   string    `json:"device,omitempty"`
	Zone     string    `json:"zone,omitempty"`
	At       time.Time `json:"at"`
}

type journal struct {
	mu    sync.Mutex
	path  string                     // "" keeps it in memory only
	steps map[string]map[string]step // pool → volume name → step
}

func loadJournal(dir string) (*journal, error) {
	j := &journal{steps: map[string]map[string]step{}}
	if dir == "" {
		return j, nil
	}
	j.path = filepath.Join(dir, journalFile)
	if err := readStateFile(j.path, &j.steps); err != nil {
		j.steps = map[string]map[string]step{}
		return j, fmt.Errorf("%w (the volumes' tags are still the truth: each is checked before it is moved)", err)
	}
	return j, nil
}

// begin records that s is about to be asked of EC2.
func (j *journal) begin(pool, volume string, s step) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.steps[pool] == nil {
		j.steps[pool] = map[string]step{}
	}
	s.At = time.Now().UTC()
	j.steps[pool][volume] = s
	return j.save()
}

// end records that the volume's step is confirmed (or settled).
func (j *journal) end(pool, volume string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.steps[pool], volume)
	if len(j.steps[pool]) == 0 {
		delete(j.steps, pool)
	}
	return j.save()
}

// pending returns the steps left under way for pool.
func (j *journal) pending(pool string) map[string]step {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]step{}
	for k, v := range j.steps[pool] {
		out[k] = v
	}
	return out
}

// save writes the journal; the caller holds j.mu.
func (j *journal) save() error {
	if j.path == "" {
		return nil
	}
	return writeStateFile(j.path, j.steps, "a volume step")
}

// settle finishes or undoes the steps a daemon left under way for pool,
// before its volumes go to to, each after a describe says where its volume
// is. A detach from a fenced instance is finished. An attach left under
// way is kept if it was to to; if it was to another instance, which never
// served with the volume (the attach had not returned), the volume is
// taken back from it with a plain detach, never a forced one: it runs.
// It returns what it did, for the log.
func (p *Provider) settle(ctx context.Context, pl *pool, poolName string, to runtime.Instance) ([]string, error) {
	var said []string
	for name, s := range p.journal.pending(poolName) {
		v := Volume{Name: name, Device: s.Device}
		for _, dv := range pl.spec.Volumes {
			if dv.Name == name {
				v = dv
			}
		}
		what, err := p.settleStep(ctx, pl, poolName, v, s, to)
		if err != nil {
			return said, fmt.Errorf("volume %s: settle the %s left under way at %s: %w", name, s.Op, s.At.Format(time.RFC3339), err)
		}
		said = append(said, fmt.Sprintf("the %s of %s left under way at %s: %s", s.Op, name, s.At.Format(time.RFC3339), what))
	}
	return said, nil
}

func (p *Provider) settleStep(ctx context.Context, pl *pool, poolName string, v Volume, s step, to runtime.Instance) (string, error) {
	if s.Op == "create" {
		vol, err := p.findVolume(ctx, pl, poolName, v.Name)
		if err != nil {
			return "", err
		}
		what := "nothing was made"
		if vol != nil {
			what = "made " + aws.ToString(vol.VolumeId)
		}
		return what, p.journal.end(poolName, v.Name)
	}
	vol, err := p.volume(ctx, pl, s.Volume)
	if errors.Is(err, errVolumeGone) {
		return "the volume is gone (deleted by hand): nothing to settle", p.journal.end(poolName, v.Name)
	}
	if err != nil {
		return "", err
	}
	var holder string
	for _, a := range vol.Attachments {
		holder = aws.ToString(a.InstanceId)
	}
	switch {
	case s.Op == "detach" && holder == s.Instance:
		if err := p.detachFrom(ctx, pl, poolName, v, s.Volume, holder); err != nil {
			return "", err
		}
		return "finished: detached from " + holder, nil
	case s.Op == "attach" && holder == s.Instance && holder != to.ID:
		if err := p.detach(ctx, pl, s.Volume, holder, false); err != nil {
			return "", err
		}
		gctx, cancel := context.WithTimeout(ctx, p.opts.DetachGrace)
		defer cancel()
		if err := p.waitVolume(gctx, pl, s.Volume, available); err != nil {
			return "", fmt.Errorf("take it back from %s, which runs, so it is not forced: %w", holder, err)
		}
		return "undone: taken back from " + holder + ", which never served with it", p.journal.end(poolName, v.Name)
	}
	where := "available"
	if holder != "" {
		where = "attached to " + holder
	}
	return "confirmed: " + where, p.journal.end(poolName, v.Name)
}

var _ runtime.Attacher = (*Provider)(nil)
