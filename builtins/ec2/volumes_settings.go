package ec2

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Volume is an EBS volume a pool declares: `volume NAME { size | snapshot;
// type; device; on_termination }`. In a pool without primary each
// instance gets its own, made with the instance (a block device mapping),
// so it is attached before the instance boots; in a primary pool there is
// one, which follows the primary (Attach).
type Volume struct {
	Name     string
	SizeGiB  int32  // 0: the snapshot's size
	Snapshot string // snap-…, or ""
	Type     string // gp3 unless set
	Device   string // /dev/sdf unless set
	// Keep leaves the volume when its instance goes. A primary's volume
	// is always kept: it outlives every primary.
	Keep bool
}

// VolumeTypes are the EBS volume types a volume may be.
// (io1 and io2 need provisioned IOPS, which a volume block does not take
// yet.)
var VolumeTypes = []string{"gp3", "gp2", "st1", "sc1", "standard"}

// DefaultDevice is where a volume is attached unless its block says.
const DefaultDevice = "/dev/sdf"

// VolumeSettings are what a `volume NAME { … }` of an ec2 pool takes.
var VolumeSettings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"size":           {Check: checkSize},
		"snapshot":       {Check: checkSnapshotID},
		"type":           {Words: VolumeTypes},
		"device":         {Check: checkDevice},
		"on_termination": {Words: []string{"keep", "delete"}},
	},
	Check: checkVolume,
}

// checkSize: whole GiB, as EBS sizes volumes, from 1GiB to 16TiB.
func checkSize(c *lang.Checker, s *lang.Setting) {
	if len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s, "write e.g. size 20GiB", "size takes one size")
		return
	}
	if _, err := sizeGiB(s); err != nil {
		c.Errorf(s.Args[0], "EBS volumes are sized in whole GiB, 1GiB to 16TiB: write e.g. size 20GiB", "%v", err)
	}
}

func sizeGiB(s *lang.Setting) (int32, error) {
	q, err := s.Quantity(lang.Size)
	if err != nil {
		return 0, err
	}
	gib := q.Value / (1 << 30)
	if gib != math.Trunc(gib) || gib < 1 || gib > 16384 {
		return 0, fmt.Errorf("size %s is not a whole number of GiB from 1 to 16384", s.Args[0].Value.Number)
	}
	return int32(gib), nil
}

var snapshotID = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)

func checkSnapshotID(c *lang.Checker, s *lang.Setting) {
	v, ok := c.OneString(s, `"snap-0123456789abcdef0"`)
	if !ok {
		return
	}
	if !snapshotID.MatchString(v) {
		c.Errorf(s.Args[0], `an EBS snapshot ID looks like "snap-0123456789abcdef0"`, "%q is not a snapshot ID", v)
	}
}

// devices are the names EC2 documents for EBS data volumes on Linux.
var device = regexp.MustCompile(`^/dev/(sd|xvd)[f-p]$`)

func checkDevice(c *lang.Checker, s *lang.Setting) {
	v, ok := c.OneString(s, `"/dev/sdf"`)
	if !ok {
		return
	}
	if !device.MatchString(v) {
		c.Errorf(s.Args[0], `EC2's names for data volumes are /dev/sdf to /dev/sdp (or /dev/xvdf to /dev/xvdp)`, "%q is not a device name EC2 attaches data volumes at", v)
	}
}

// checkVolume checks what a volume's settings need of each other and of
// its pool.
func checkVolume(c *lang.Checker, pool *lang.PoolDecl, b *lang.BlockDecl) {
	var size, snap, term *lang.Setting
	for _, s := range b.Settings {
		switch s.Key.Name {
		case "size":
			size = s
		case "snapshot":
			snap = s
		case "on_termination":
			term = s
		}
	}
	if size == nil && snap == nil {
		c.Errorf(b.Kind, "add size 20GiB, or snapshot \"snap-…\" to start from a copy", "volume %s needs a size or a snapshot", b.Kind.Name)
	}
	if term != nil && term.Word() == "delete" && isPrimary(pool) {
		c.Errorf(term, "leave on_termination out: a primary pool's volume outlives every primary, and follows the next one",
			"volume %s follows the primary: it cannot be deleted with an instance", b.Kind.Name)
	}
}

func isPrimary(p *lang.PoolDecl) bool {
	for _, it := range p.Items {
		if it.Primary {
			return true
		}
	}
	return false
}

// VolumesFrom reads a checked pool's volumes.
func VolumesFrom(p *lang.PoolDecl) ([]Volume, error) {
	var out []Volume
	devices := map[string]string{}
	for _, it := range p.Items {
		if it.Volume == nil {
			continue
		}
		v := Volume{Name: it.Volume.Kind.Name, Type: "gp3", Device: DefaultDevice, Keep: isPrimary(p)}
		for _, s := range it.Volume.Settings {
			var err error
			switch s.Key.Name {
			case "size":
				v.SizeGiB, err = sizeGiB(s)
			case "snapshot":
				v.Snapshot, err = s.Str()
			case "type":
				v.Type = s.Word()
			case "device":
				v.Device, err = s.Str()
			case "on_termination":
				v.Keep = s.Word() == "keep"
			}
			if err != nil {
				return nil, fmt.Errorf("%s: volume %s: %w", s.Pos, v.Name, err)
			}
		}
		if other, ok := devices[v.Device]; ok {
			return nil, fmt.Errorf("%s: volume %s: device %s is volume %s's already: give each volume its own (/dev/sdf to /dev/sdp)", it.Pos, v.Name, v.Device, other)
		}
		devices[v.Device] = v.Name
		if strings.ContainsAny(v.Name, " \t\n") {
			return nil, fmt.Errorf("%s: volume name %q has spaces", it.Pos, v.Name)
		}
		out = append(out, v)
	}
	return out, nil
}
