package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cloudspeak/cloudspeak/internal/atomicfile"
)

// Every launch carries a ClientToken derived from the pool, the slot's name
// and the slot's generation, so a RunInstances repeated after a crash or a
// timeout (by the SDK's retryer, or by a restarted daemon) gets the instance
// the first one launched instead of a second one. Once the slot's instance
// is stopped the generation moves on, so the next launch in that slot is a
// new one. Generations are kept in StateDir/ec2-generations.json.

const generationsFile = "ec2-generations.json"

// clientToken is at most 64 ASCII characters, EC2's limit.
func clientToken(pool, name string, gen int) string {
	sum := sha256.Sum256([]byte(pool + "\x00" + name + "\x00" + strconv.Itoa(gen)))
	return "cs-" + hex.EncodeToString(sum[:])[:61]
}

// Generations keeps each launch slot's generation: in a file in the state
// directory (a single daemon), or in a cluster's fenced state.
type Generations interface {
	Get(ctx context.Context, pool, name string) (int, error)
	// Bump moves the slot to its next generation, kept before it returns.
	Bump(ctx context.Context, pool, name string) (int, error)
}

type generations struct {
	mu   sync.Mutex
	path string                    // "" keeps them in memory only
	m    map[string]map[string]int // pool → name → generation
}

// loadGenerations reads dir's generations file. A missing file is a fresh
// start; an unreadable one is reported, and its slots start again at 0
// (harmless: a token that names a terminated instance moves its slot on).
func loadGenerations(dir string) (*generations, error) {
	g := &generations{m: map[string]map[string]int{}}
	if dir == "" {
		return g, nil
	}
	g.path = filepath.Join(dir, generationsFile)
	if err := readStateFile(g.path, &g.m); err != nil {
		g.m = map[string]map[string]int{}
		return g, fmt.Errorf("%w (launch tokens start again)", err)
	}
	return g, nil
}

// readStateFile reads one of the provider's files in the state directory
// into v; a missing file leaves v as it is.
func readStateFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// writeStateFile writes v to one of the provider's files atomically (a
// temporary file renamed over it), 0600 in a 0700 directory, so a crash
// leaves the old content or the new, never half of either; what says what
// it holds, for errors.
func writeStateFile(path string, v any, what string) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("save %s to %s: %w", what, path, err)
	}
	return nil
}

func (g *generations) Get(_ context.Context, pool, name string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[pool][name], nil
}

// bump moves the slot to its next generation and saves it; it returns the
// new generation.
func (g *generations) Bump(_ context.Context, pool, name string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[pool] == nil {
		g.m[pool] = map[string]int{}
	}
	g.m[pool][name]++
	return g.m[pool][name], g.save()
}

// save writes the file; the caller holds g.mu.
func (g *generations) save() error {
	if g.path == "" {
		return nil
	}
	return writeStateFile(g.path, g.m, "launch generations")
}
