package ec2test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EBS volumes: created (creating → available), attached (attach.go),
// snapshotted (snapshots.go) and deleted. A volume lives in one zone and
// attaches only to an instance there.

type volume struct {
	id, zone, typ string
	snapshot      string // the snapshot it was made from, if any
	size, iops    int
	state         string    // creating, available, in-use; deleted once gone
	until         time.Time // when creating ends
	created       time.Time
	att           *attachment // nil when available
	tagged
}

type attachment struct {
	instance, device    string
	status              string    // attaching, attached, detaching
	since               time.Time // the attach time
	until               time.Time // when attaching or detaching ends; zero while a busy volume's detach waits
	deleteOnTermination bool
	forced              bool // a detach with Force: a busy volume comes off all the same
}

// volumeSpec is a volume to make: CreateVolume's parameters, or a block
// device mapping's.
type volumeSpec struct {
	typ, snapshot       string
	size, iops          int
	device              string // for a block device mapping
	deleteOnTermination bool   // likewise
}

var volumeTypes = []string{"standard", "io1", "io2", "gp2", "gp3", "sc1", "st1"}

// volumeSpec checks a volume's size (GiB), type, snapshot and IOPS as EC2
// does: the size may be left out when a snapshot gives it, and may not be
// smaller than the snapshot's.
func (s *Server) volumeSpec(size, typ, snap, iops string) (volumeSpec, error) {
	v := volumeSpec{typ: typ, snapshot: snap}
	if v.typ == "" {
		v.typ = "gp2" // EC2's default
	}
	if !slices.Contains(volumeTypes, v.typ) {
		return v, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter volumeType is invalid.", v.typ)
	}
	minSize := 1
	if snap != "" {
		sn, err := s.snapshot(snap)
		if err != nil {
			return v, err
		}
		if sn.state != "completed" {
			return v, errorf(http.StatusBadRequest, "IncorrectState", "Snapshot '%s' is not 'completed'.", snap)
		}
		minSize, v.size = sn.size, sn.size
	}
	if size != "" {
		n, err := strconv.Atoi(size)
		if err != nil {
			return v, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter size is invalid.", size)
		}
		v.size = n
	}
	switch {
	case size == "" && snap == "":
		return v, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter size or snapshotId")
	case v.size < minSize:
		return v, errorf(http.StatusBadRequest, "InvalidParameterValue", "Volume of %dGiB is too small; minimum is %dGiB.", v.size, minSize)
	case v.size > 16384:
		return v, errorf(http.StatusBadRequest, "InvalidParameterValue", "Volume of %dGiB is too large; maximum is 16384GiB.", v.size)
	}
	return v, s.volumeIOPS(&v, iops)
}

// volumeIOPS sets v's IOPS: given for io1 and io2 (which need them) and
// gp3 (default 3000), EC2's baseline for gp2 (3 per GiB, 100–16000), none
// for the magnetic types.
func (s *Server) volumeIOPS(v *volumeSpec, iops string) error {
	if iops != "" {
		n, err := strconv.Atoi(iops)
		if err != nil || n < 100 || n > 256000 {
			return errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter iops is invalid.", iops)
		}
		v.iops = n
	}
	switch v.typ {
	case "io1", "io2":
		if iops == "" {
			return errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter iops")
		}
	case "gp3":
		if iops == "" {
			v.iops = 3000
		}
	default:
		if iops != "" {
			return errorf(http.StatusBadRequest, "InvalidParameterCombination", "The parameter iops is not supported for %s volumes.", v.typ)
		}
		if v.typ == "gp2" {
			v.iops = min(max(3*v.size, 100), 16000)
		}
	}
	return nil
}

// newVolume makes a volume in zone, creating for VolumeDelay; the caller
// holds s.mu.
func (s *Server) newVolume(spec volumeSpec, zone string) *volume {
	now := s.now().UTC()
	v := &volume{
		id: newID("vol-"), zone: zone, typ: spec.typ, snapshot: spec.snapshot, size: spec.size, iops: spec.iops,
		// until is never zero: with no delay the reply says creating and
		// the next request finds it available, as on EC2.
		state: "creating", until: now.Add(max(s.opts.VolumeDelay, 0)), created: now,
	}
	s.volumes[v.id] = v
	s.volumeOrder = append(s.volumeOrder, v)
	return v
}

func (s *Server) createVolume(f url.Values) (any, error) {
	token := f.Get("ClientToken")
	if len(token) > 64 || !isASCII(token) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue",
			"Value (%s) for parameter clientToken is invalid. The token must be at most 64 ASCII characters.", token)
	}
	canon := canonical(f)
	if t, ok := s.volumeTokens[token]; ok && token != "" {
		// As RunInstances: the first reply again, with today's state.
		if t.params != canon {
			return nil, errorf(http.StatusBadRequest, "IdempotentParameterMismatch",
				"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
		}
		return &createVolumeResult{volumeXML: s.volumeXML(t.volume)}, nil
	}
	zone := f.Get("AvailabilityZone")
	if zone == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter AvailabilityZone")
	}
	if !s.validZone(zone) {
		return nil, zoneError(zone)
	}
	spec, err := s.volumeSpec(f.Get("Size"), f.Get("VolumeType"), f.Get("SnapshotId"), f.Get("Iops"))
	if err != nil {
		return nil, err
	}
	v := s.newVolume(spec, zone)
	v.setTags(specTags(f, "volume"))
	if token != "" {
		s.volumeTokens[token] = &tokenVolume{params: canon, volume: v}
	}
	return &createVolumeResult{volumeXML: s.volumeXML(v)}, nil
}

// tokenVolume is what a CreateVolume client token made, and with what.
type tokenVolume struct {
	params string
	volume *volume
}

// volume finds a live volume.
func (s *Server) volume(id string) (*volume, error) {
	if !strings.HasPrefix(id, "vol-") {
		return nil, errorf(http.StatusBadRequest, "InvalidVolumeID.Malformed", "Invalid id: %q (expecting \"vol-...\")", id)
	}
	if v := s.volumes[id]; v != nil {
		return v, nil
	}
	return nil, errorf(http.StatusBadRequest, "InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
}

func (s *Server) deleteVolume(f url.Values) (any, error) {
	if err := required(f, "VolumeId"); err != nil {
		return nil, err
	}
	v, err := s.volume(f.Get("VolumeId"))
	if err != nil {
		return nil, err
	}
	switch {
	case v.att != nil:
		return nil, errorf(http.StatusBadRequest, "VolumeInUse", "Volume %s is currently attached to %s", v.id, v.att.instance)
	case v.state != "available":
		return nil, errorf(http.StatusBadRequest, "IncorrectState", "The volume '%s' is '%s'.", v.id, v.state)
	}
	s.removeVolume(v)
	return &returnResult{Return: true}, nil
}

// removeVolume deletes v; a client token that made it still names it.
func (s *Server) removeVolume(v *volume) {
	v.state, v.att = "deleted", nil
	delete(s.volumes, v.id)
	s.volumeOrder = slices.DeleteFunc(s.volumeOrder, func(x *volume) bool { return x == v })
}

var volumeFilters = map[string]func(*volume) []string{
	"volume-id":         func(v *volume) []string { return []string{v.id} },
	"status":            func(v *volume) []string { return []string{v.state} },
	"availability-zone": func(v *volume) []string { return []string{v.zone} },
	"size":              func(v *volume) []string { return []string{strconv.Itoa(v.size)} },
	"volume-type":       func(v *volume) []string { return []string{v.typ} },
	"snapshot-id":       func(v *volume) []string { return []string{v.snapshot} },
	"create-time":       func(v *volume) []string { return []string{v.created.Format(timeFormat)} },
	"encrypted":         func(v *volume) []string { return []string{"false"} },
	"tag-key":           func(v *volume) []string { return v.tagOrder },
	"tag-value":         func(v *volume) []string { return v.tagValues() },
	"attachment.instance-id": func(v *volume) []string {
		return attachmentValue(v, func(a *attachment) string { return a.instance })
	},
	"attachment.status": func(v *volume) []string {
		return attachmentValue(v, func(a *attachment) string { return a.status })
	},
	"attachment.device": func(v *volume) []string {
		return attachmentValue(v, func(a *attachment) string { return a.device })
	},
	"attachment.delete-on-termination": func(v *volume) []string {
		return attachmentValue(v, func(a *attachment) string { return strconv.FormatBool(a.deleteOnTermination) })
	},
	"attachment.attach-time": func(v *volume) []string {
		return attachmentValue(v, func(a *attachment) string { return a.since.Format(timeFormat) })
	},
}

func attachmentValue(v *volume, get func(*attachment) string) []string {
	if v.att == nil {
		return nil
	}
	return []string{get(v.att)}
}

func (s *Server) describeVolumes(f url.Values) (any, error) {
	ids := list(f, "VolumeId")
	if err := idsWithMaxResults(ids, f, "volumeSet"); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := s.volume(id); err != nil {
			return nil, err
		}
	}
	filters, err := parseFilters(f, volumeFilters)
	if err != nil {
		return nil, err
	}
	var matched []*volume
	for _, v := range s.volumeOrder {
		if len(ids) > 0 && !slices.Contains(ids, v.id) {
			continue
		}
		if matchFilters(filters, &v.tagged, func(name string) []string { return volumeFilters[name](v) }) {
			matched = append(matched, v)
		}
	}
	page, next, err := paginate(matched, f)
	if err != nil {
		return nil, err
	}
	res := &describeVolumesResult{NextToken: next}
	for _, v := range page {
		res.VolumeSet.Items = append(res.VolumeSet.Items, s.volumeXML(v))
	}
	return res, nil
}

// advanceStorage is advance for volumes, attachments, snapshots and
// images.
func (s *Server) advanceStorage(now time.Time) {
	done := func(until time.Time) bool { return !until.IsZero() && !now.Before(until) }
	for _, v := range s.volumeOrder {
		if v.state == "creating" && done(v.until) {
			v.state, v.until = "available", time.Time{}
		}
		if a := v.att; a != nil && done(a.until) {
			switch a.status {
			case "attaching":
				a.status, a.until = "attached", time.Time{}
			case "detaching":
				v.state, v.att = "available", nil
			}
		}
	}
	for _, sn := range s.snapOrder {
		if sn.state == "pending" && done(sn.until) {
			sn.state, sn.until = "completed", time.Time{}
		}
	}
	for _, im := range s.imageOrder {
		if im.state == "pending" && done(im.until) {
			im.state, im.until = "available", time.Time{}
		}
	}
}

// release takes a terminated instance's volumes off it: those marked
// deleteOnTermination are deleted, the others become available.
func (s *Server) release(in *instance) {
	for _, v := range slices.Clone(s.volumeOrder) {
		if v.att == nil || v.att.instance != in.id {
			continue
		}
		if v.att.deleteOnTermination {
			s.removeVolume(v)
		} else {
			v.state, v.att = "available", nil
		}
	}
}

// attached returns the volumes attached (attaching, detaching) to instance
// id, in creation order.
func (s *Server) attached(id string) []*volume {
	var out []*volume
	for _, v := range s.volumeOrder {
		if v.att != nil && v.att.instance == id {
			out = append(out, v)
		}
	}
	return out
}

type attachmentXML struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type volumeXML struct {
	VolumeID         string `xml:"volumeId"`
	Size             int    `xml:"size"`
	SnapshotID       string `xml:"snapshotId"` // empty, not absent, for none: EC2's way
	AvailabilityZone string `xml:"availabilityZone"`
	Status           string `xml:"status"`
	CreateTime       string `xml:"createTime"`
	AttachmentSet    struct {
		Items []attachmentXML `xml:"item"`
	} `xml:"attachmentSet"`
	TagSet             tagSetXML `xml:"tagSet"`
	VolumeType         string    `xml:"volumeType"`
	Iops               int       `xml:"iops,omitempty"`
	Encrypted          bool      `xml:"encrypted"`
	MultiAttachEnabled bool      `xml:"multiAttachEnabled"`
}

type createVolumeResult struct {
	meta
	volumeXML
}

type describeVolumesResult struct {
	meta
	VolumeSet struct {
		Items []volumeXML `xml:"item"`
	} `xml:"volumeSet"`
	NextToken string `xml:"nextToken,omitempty"`
}

type attachmentResult struct {
	meta
	attachmentXML
}

func (s *Server) volumeXML(v *volume) volumeXML {
	x := volumeXML{
		VolumeID: v.id, Size: v.size, SnapshotID: v.snapshot, AvailabilityZone: v.zone, Status: v.state,
		CreateTime: v.created.Format(timeFormat), TagSet: v.tagSet(), VolumeType: v.typ, Iops: v.iops,
	}
	if v.att != nil {
		x.AttachmentSet.Items = []attachmentXML{v.att.xml(v.id)}
	}
	return x
}

func (a *attachment) xml(volumeID string) attachmentXML {
	return attachmentXML{
		VolumeID: volumeID, InstanceID: a.instance, Device: a.device, Status: a.status,
		AttachTime: a.since.UTC().Format(timeFormat), DeleteOnTermination: a.deleteOnTermination,
	}
}

// Volume is a snapshot of one volume, for tests to inspect.
type Volume struct {
	ID, Zone, State, Type, SnapshotID string
	Size, IOPS                        int
	// The attachment, if any: the instance, its status (attaching,
	// attached, detaching) and the device.
	Instance, Attachment, Device string
	DeleteOnTermination          bool
	Busy                         bool // see SetBusy
	Created                      time.Time
	Tags                         map[string]string
}

// Volumes returns the volumes there are (not the deleted), oldest first.
func (s *Server) Volumes() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Volume, 0, len(s.volumeOrder))
	for _, v := range s.volumeOrder {
		out = append(out, s.volumeInfo(v))
	}
	return out
}

// Volume returns one volume's snapshot; false once it is deleted.
func (s *Server) Volume(id string) (Volume, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	v, ok := s.volumes[id]
	if !ok {
		return Volume{}, false
	}
	return s.volumeInfo(v), true
}

func (s *Server) volumeInfo(v *volume) Volume {
	x := Volume{
		ID: v.id, Zone: v.zone, State: v.state, Type: v.typ, SnapshotID: v.snapshot, Size: v.size, IOPS: v.iops,
		Busy: s.isBusy(v.id), Created: v.created, Tags: v.tagMap(),
	}
	if a := v.att; a != nil {
		x.Instance, x.Attachment, x.Device, x.DeleteOnTermination = a.instance, a.status, a.device, a.deleteOnTermination
	}
	return x
}
