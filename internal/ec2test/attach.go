package ec2test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Attaching and detaching volumes, and the volumes RunInstances makes from
// block device mappings. An attachment is attaching for AttachDelay, then
// attached; a detach is detaching for DetachDelay, then the volume is
// available. A busy volume (SetBusy, Options.BusyDetach) is one the guest
// still has mounted: EC2 leaves its detach in detaching until the guest
// lets go or a forced detach ends it.

func (s *Server) attachVolume(f url.Values) (any, error) {
	if err := required(f, "VolumeId", "InstanceId", "Device"); err != nil {
		return nil, err
	}
	v, err := s.volume(f.Get("VolumeId"))
	if err != nil {
		return nil, err
	}
	id, device := f.Get("InstanceId"), f.Get("Device")
	if err := s.checkIDs([]string{id}); err != nil {
		return nil, err
	}
	in := s.instances[id]
	switch {
	case v.att != nil:
		return nil, errorf(http.StatusBadRequest, "VolumeInUse", "%s is already attached to an instance", v.id)
	case v.state != "available":
		return nil, errorf(http.StatusBadRequest, "IncorrectState", "%s is not 'available'.", v.id)
	case in.state != "running" && in.state != "stopped":
		return nil, errorf(http.StatusBadRequest, "IncorrectState", "Instance '%s' is not 'running'.", id)
	case v.zone != in.zone:
		return nil, errorf(http.StatusBadRequest, "InvalidVolume.ZoneMismatch",
			"The volume '%s' is not in the same availability zone as instance '%s'", v.id, id)
	}
	for _, other := range s.attached(id) {
		if other.att.device == device {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue",
				"Invalid value '%s' for unixDevice. Attachment point %s is already in use", device, device)
		}
	}
	now := s.now().UTC()
	v.state = "in-use"
	v.att = &attachment{instance: id, device: device, status: "attaching", since: now, until: now.Add(max(s.opts.AttachDelay, 0))}
	return &attachmentResult{attachmentXML: v.att.xml(v.id)}, nil
}

// detachVolume starts a detach, or forces one under way: detaching again
// is allowed, as EC2 allows forcing a detach that is stuck.
func (s *Server) detachVolume(f url.Values) (any, error) {
	if err := required(f, "VolumeId"); err != nil {
		return nil, err
	}
	v, err := s.volume(f.Get("VolumeId"))
	if err != nil {
		return nil, err
	}
	a := v.att
	if a == nil {
		return nil, errorf(http.StatusBadRequest, "IncorrectState", "Volume '%s' is in the '%s' state.", v.id, v.state)
	}
	if id := f.Get("InstanceId"); id != "" && id != a.instance {
		if err := s.checkIDs([]string{id}); err != nil {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "InvalidAttachment.NotFound",
			"The volume '%s' is not attached to instance '%s'", v.id, id)
	}
	if dev := f.Get("Device"); dev != "" && dev != a.device {
		return nil, errorf(http.StatusBadRequest, "InvalidAttachment.NotFound",
			"The volume '%s' is not attached at device '%s'", v.id, dev)
	}
	force := f.Get("Force") == "true"
	if a.status != "detaching" {
		a.status, a.forced = "detaching", force
		s.detachTimer(v)
	} else if force && !a.forced {
		a.forced = true
		s.detachTimer(v)
	}
	return &attachmentResult{attachmentXML: a.xml(v.id)}, nil
}

// detachTimer sets when v's detach ends: after DetachDelay, or never while
// v is busy and the detach not forced. until is never zero otherwise: with
// no delay the reply says detaching and the next request finds it done.
func (s *Server) detachTimer(v *volume) {
	a := v.att
	if s.isBusy(v.id) && !a.forced {
		a.until = time.Time{}
		return
	}
	if a.until.IsZero() {
		a.until = s.now().Add(max(s.opts.DetachDelay, 0))
	}
}

// SetBusy says whether the guest still uses a volume: while it does, a
// detach without Force stays detaching (as on EC2, where an unforced
// detach waits for the guest to let go); once it does not, a detach under
// way ends after DetachDelay. It overrides Options.BusyDetach for that
// volume.
func (s *Server) SetBusy(volumeID string, busy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.busy[volumeID] = busy
	v := s.volumes[volumeID]
	if v == nil || v.att == nil || v.att.status != "detaching" || v.att.forced {
		return
	}
	if busy {
		v.att.until = time.Time{}
	} else {
		s.detachTimer(v)
	}
}

func (s *Server) isBusy(volumeID string) bool {
	if b, ok := s.busy[volumeID]; ok {
		return b
	}
	return s.opts.BusyDetach
}

// maxBlockDevices bounds a launch's block device mappings, as EC2's
// volume limit per instance does.
const maxBlockDevices = 40

// blockDevices reads RunInstances' BlockDeviceMapping.N over the mappings
// of the image (when it was made here): a mapping of the image's device
// changes it (NoDevice drops it), another adds one. EBS volumes made at
// launch are deleted on termination unless told otherwise, as on EC2.
func (s *Server) blockDevices(f url.Values, image string) ([]volumeSpec, error) {
	var specs []volumeSpec
	if im := s.images[image]; im != nil {
		specs = append(specs, im.devices...)
	}
	idx := indices(f, "BlockDeviceMapping")
	if len(idx) > maxBlockDevices {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "At most %d block device mappings are allowed.", maxBlockDevices)
	}
	for _, i := range idx {
		p := "BlockDeviceMapping." + i
		dev := f.Get(p + ".DeviceName")
		if dev == "" {
			return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter %s.DeviceName", p)
		}
		var base *volumeSpec
		for j := range specs {
			if specs[j].device == dev {
				base = &specs[j]
			}
		}
		if f.Has(p + ".NoDevice") {
			specs = deleteDevice(specs, dev)
			continue
		}
		if !hasMembers(f, p+".Ebs") {
			continue // an instance store (VirtualName): no volume
		}
		size, typ, snap := f.Get(p+".Ebs.VolumeSize"), f.Get(p+".Ebs.VolumeType"), f.Get(p+".Ebs.SnapshotId")
		del := true
		if base != nil {
			if snap == "" {
				snap = base.snapshot
			}
			if size == "" && snap == base.snapshot {
				size = strconv.Itoa(base.size)
			}
			if typ == "" {
				typ = base.typ
			}
			del = base.deleteOnTermination
		}
		spec, err := s.volumeSpec(size, typ, snap, f.Get(p+".Ebs.Iops"))
		if err != nil {
			return nil, err
		}
		if d := f.Get(p + ".Ebs.DeleteOnTermination"); d != "" {
			del = d == "true"
		}
		spec.device, spec.deleteOnTermination = dev, del
		specs = append(deleteDevice(specs, dev), spec)
	}
	return specs, nil
}

func deleteDevice(specs []volumeSpec, dev string) []volumeSpec {
	var out []volumeSpec
	for _, sp := range specs {
		if sp.device != dev {
			out = append(out, sp)
		}
	}
	return out
}

// hasMembers says whether any key starts with prefix + ".": a
// structure's members were given.
func hasMembers(f url.Values, prefix string) bool {
	for k := range f {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

// attachBlockDevices makes in's volumes from specs, attached from its
// launch, tagged with tags.
func (s *Server) attachBlockDevices(in *instance, specs []volumeSpec, tags []tag) {
	for _, spec := range specs {
		v := s.newVolume(spec, in.zone)
		v.state, v.until = "in-use", time.Time{}
		v.att = &attachment{instance: in.id, device: spec.device, status: "attached", since: in.launched,
			deleteOnTermination: spec.deleteOnTermination}
		v.setTags(tags)
	}
}
