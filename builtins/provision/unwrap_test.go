package provision

import (
	"context"
	"testing"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// volumes is a provider whose primaries carry a volume and which makes
// snapshots, as ec2's does.
type volumes struct{ runtime.Provider }

func (volumes) Attach(context.Context, string, runtime.Instance) (string, error) { return "", nil }
func (volumes) Snapshot(context.Context, string, string, int) (string, error) {
	return "", nil
}

// A pool with install or configure steps wraps its provider: the engine
// must still find the provider's volumes and snapshots through it, or a
// primary would serve without its volume.
func TestUnwrapFindsTheProvider(t *testing.T) {
	var p runtime.Provider = &Provisioner{Provider: volumes{}}
	if _, ok := p.(runtime.Attacher); ok {
		t.Fatal("the wrapper itself is an Attacher: the test would not show the unwrapping")
	}
	if _, ok := runtime.As[runtime.Attacher](p); !ok {
		t.Error("runtime.As does not find the Attacher inside the provisioning wrapper")
	}
	if _, ok := runtime.As[runtime.Snapshotter](p); !ok {
		t.Error("runtime.As does not find the Snapshotter inside the provisioning wrapper")
	}
	if _, ok := runtime.As[runtime.Imager](p); ok {
		t.Error("runtime.As found an Imager nobody implements")
	}
}
