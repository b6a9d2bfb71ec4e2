package ec2test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EBS snapshots: pending for SnapshotDelay, then completed. All are the
// account's own (ownerID); there are no public ones.

type snapshot struct {
	id, volume, description string
	size                    int
	state                   string    // pending, completed
	started, until          time.Time // until: when pending ends
	tagged
}

// newSnapshot starts a snapshot of v; the caller holds s.mu.
func (s *Server) newSnapshot(v *volume, description string) *snapshot {
	now := s.now().UTC()
	sn := &snapshot{
		id: newID("snap-"), volume: v.id, description: description, size: v.size,
		// Never zero: the reply says pending, as EC2's does.
		state: "pending", started: now, until: now.Add(max(s.opts.SnapshotDelay, 0)),
	}
	s.snapshots[sn.id] = sn
	s.snapOrder = append(s.snapOrder, sn)
	return sn
}

func (s *Server) snapshot(id string) (*snapshot, error) {
	if !strings.HasPrefix(id, "snap-") {
		return nil, errorf(http.StatusBadRequest, "InvalidSnapshotID.Malformed", "Invalid id: %q (expecting \"snap-...\")", id)
	}
	if sn := s.snapshots[id]; sn != nil {
		return sn, nil
	}
	return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
}

func (s *Server) createSnapshot(f url.Values) (any, error) {
	if err := required(f, "VolumeId"); err != nil {
		return nil, err
	}
	v, err := s.volume(f.Get("VolumeId"))
	if err != nil {
		return nil, err
	}
	if v.state == "creating" {
		return nil, errorf(http.StatusBadRequest, "IncorrectState", "The volume '%s' is 'creating'.", v.id)
	}
	sn := s.newSnapshot(v, f.Get("Description"))
	sn.setTags(specTags(f, "snapshot"))
	return &createSnapshotResult{snapshotXML: sn.xml()}, nil
}

// deleteSnapshot refuses a snapshot an image of this account is made of,
// as EC2 does: deregister the image first.
func (s *Server) deleteSnapshot(f url.Values) (any, error) {
	if err := required(f, "SnapshotId"); err != nil {
		return nil, err
	}
	sn, err := s.snapshot(f.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	for _, im := range s.imageOrder {
		for _, d := range im.devices {
			if d.snapshot == sn.id {
				return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", sn.id, im.id)
			}
		}
	}
	s.removeSnapshot(sn)
	return &returnResult{Return: true}, nil
}

func (s *Server) removeSnapshot(sn *snapshot) {
	delete(s.snapshots, sn.id)
	s.snapOrder = slices.DeleteFunc(s.snapOrder, func(x *snapshot) bool { return x == sn })
}

var snapshotFilters = map[string]func(*snapshot) []string{
	"snapshot-id": func(sn *snapshot) []string { return []string{sn.id} },
	"volume-id":   func(sn *snapshot) []string { return []string{sn.volume} },
	"status":      func(sn *snapshot) []string { return []string{sn.state} },
	"owner-id":    func(sn *snapshot) []string { return []string{ownerID} },
	"description": func(sn *snapshot) []string { return []string{sn.description} },
	"progress":    func(sn *snapshot) []string { return []string{sn.progress()} },
	"volume-size": func(sn *snapshot) []string { return []string{strconv.Itoa(sn.size)} },
	"start-time":  func(sn *snapshot) []string { return []string{sn.started.Format(timeFormat)} },
	"encrypted":   func(sn *snapshot) []string { return []string{"false"} },
	"tag-key":     func(sn *snapshot) []string { return sn.tagOrder },
	"tag-value":   func(sn *snapshot) []string { return sn.tagValues() },
}

// ownedBy says whether Owner.N lets account's resources through: none
// given, the account's id, self for this account, amazon for Amazon's.
func ownedBy(owners []string, account string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == account || o == "self" && account == ownerID || o == "amazon" && account == amazonOwnerID {
			return true
		}
	}
	return false
}

func (s *Server) describeSnapshots(f url.Values) (any, error) {
	ids := list(f, "SnapshotId")
	if err := idsWithMaxResults(ids, f, "snapshotSet"); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := s.snapshot(id); err != nil {
			return nil, err
		}
	}
	filters, err := parseFilters(f, snapshotFilters)
	if err != nil {
		return nil, err
	}
	var matched []*snapshot
	if ownedBy(list(f, "Owner"), ownerID) {
		for _, sn := range s.snapOrder {
			if len(ids) > 0 && !slices.Contains(ids, sn.id) {
				continue
			}
			if matchFilters(filters, &sn.tagged, func(name string) []string { return snapshotFilters[name](sn) }) {
				matched = append(matched, sn)
			}
		}
	}
	page, next, err := paginate(matched, f)
	if err != nil {
		return nil, err
	}
	res := &describeSnapshotsResult{NextToken: next}
	for _, sn := range page {
		res.SnapshotSet.Items = append(res.SnapshotSet.Items, sn.xml())
	}
	return res, nil
}

func (sn *snapshot) progress() string {
	if sn.state == "completed" {
		return "100%"
	}
	return "0%"
}

type snapshotXML struct {
	SnapshotID  string    `xml:"snapshotId"`
	VolumeID    string    `xml:"volumeId"`
	Status      string    `xml:"status"`
	StartTime   string    `xml:"startTime"`
	Progress    string    `xml:"progress"`
	OwnerID     string    `xml:"ownerId"`
	VolumeSize  int       `xml:"volumeSize"`
	Description string    `xml:"description"`
	Encrypted   bool      `xml:"encrypted"`
	StorageTier string    `xml:"storageTier"`
	TagSet      tagSetXML `xml:"tagSet"`
}

func (sn *snapshot) xml() snapshotXML {
	return snapshotXML{
		SnapshotID: sn.id, VolumeID: sn.volume, Status: sn.state, StartTime: sn.started.Format(timeFormat),
		Progress: sn.progress(), OwnerID: ownerID, VolumeSize: sn.size, Description: sn.description,
		StorageTier: "standard", TagSet: sn.tagSet(),
	}
}

type createSnapshotResult struct {
	meta
	snapshotXML
}

type describeSnapshotsResult struct {
	meta
	SnapshotSet struct {
		Items []snapshotXML `xml:"item"`
	} `xml:"snapshotSet"`
	NextToken string `xml:"nextToken,omitempty"`
}

// Snapshot is a snapshot of one EBS snapshot, for tests to inspect.
type Snapshot struct {
	ID, VolumeID, State, Description string
	Size                             int
	Started                          time.Time
	Tags                             map[string]string
}

// Snapshots returns the snapshots there are (not the deleted), oldest
// first.
func (s *Server) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Snapshot, 0, len(s.snapOrder))
	for _, sn := range s.snapOrder {
		out = append(out, Snapshot{
			ID: sn.id, VolumeID: sn.volume, State: sn.state, Description: sn.description,
			Size: sn.size, Started: sn.started, Tags: sn.tagMap(),
		})
	}
	return out
}
