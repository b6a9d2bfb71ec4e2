package ec2test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// AMIs: those made here by CreateImage (pending for ImageDelay, then
// available; launchable even when Options.Images restricts AMIs), and the
// public ones RunInstances accepts (Options.Images, or any well-formed id),
// which DescribeImages shows as Amazon's.

// amazonOwnerID owns the public images; "amazon" is its alias.
const amazonOwnerID = "137112412989"

// rootDevice is every image's and instance's root device name.
const rootDevice = "/dev/xvda"

type image struct {
	id, name, description string
	owner                 string // ownerID, or amazonOwnerID for a public image
	state                 string // pending, available
	created, until        time.Time
	instance              string // made from
	rebooted              bool   // CreateImage rebooted the instance
	devices               []volumeSpec
	tagged
}

var amiNameRE = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]{3,128}$`)

func amiNotFound(id string) error {
	return errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
}

// createImage snapshots the instance's volumes into an image. Without
// NoReboot a running instance is rebooted first, as EC2 does for a
// consistent file system; Reboots counts it.
func (s *Server) createImage(f url.Values) (any, error) {
	if err := required(f, "InstanceId", "Name"); err != nil {
		return nil, err
	}
	id, name := f.Get("InstanceId"), f.Get("Name")
	switch {
	case !amiNameRE.MatchString(name):
		return nil, errorf(http.StatusBadRequest, "InvalidAMIName.Malformed",
			"AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'")
	}
	if err := s.checkIDs([]string{id}); err != nil {
		return nil, err
	}
	in := s.instances[id]
	if in.state != "running" && in.state != "stopped" {
		return nil, errorf(http.StatusBadRequest, "IncorrectInstanceState",
			"The instance '%s' is not in the 'running' or 'stopped' state.", id)
	}
	for _, im := range s.imageOrder {
		if im.name == name {
			return nil, errorf(http.StatusBadRequest, "InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.id)
		}
	}
	now := s.now().UTC()
	im := &image{
		id: newID("ami-"), name: name, description: f.Get("Description"), owner: ownerID, instance: id,
		// Never zero: the image is pending in the reply's wake, as on EC2.
		state: "pending", created: now, until: now.Add(max(s.opts.ImageDelay, 0)),
		rebooted: f.Get("NoReboot") != "true" && in.state == "running",
	}
	if im.rebooted {
		s.reboots[id]++
	}
	snapTags := specTags(f, "snapshot")
	for _, v := range s.attached(id) {
		sn := s.newSnapshot(v, "Created by CreateImage("+id+") for "+im.id)
		sn.setTags(snapTags)
		im.devices = append(im.devices, volumeSpec{typ: v.typ, snapshot: sn.id, size: v.size, iops: v.iops,
			device: v.att.device, deleteOnTermination: v.att.deleteOnTermination})
	}
	im.setTags(specTags(f, "image"))
	s.images[im.id] = im
	s.imageOrder = append(s.imageOrder, im)
	return &createImageResult{ImageID: im.id}, nil
}

// launchable says whether RunInstances may launch image id.
func (s *Server) launchable(id string) error {
	switch {
	case id == "":
		return errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId")
	case !amiRE.MatchString(id):
		return errorf(http.StatusBadRequest, "InvalidAMIID.Malformed", "Invalid id: %q (expecting \"ami-...\")", id)
	}
	if im := s.images[id]; im != nil {
		if im.state != "available" {
			return errorf(http.StatusBadRequest, "InvalidAMIID.Unavailable", "The image id '[%s]' is not available (%s)", id, im.state)
		}
		return nil
	}
	if s.publicImage(id) == nil {
		return amiNotFound(id)
	}
	return nil
}

// publicImage is the public image id, nil if there is none: Options.Images
// are, or (if nil) every well-formed id not made here.
func (s *Server) publicImage(id string) *image {
	if !amiRE.MatchString(id) || s.images[id] != nil || s.deregistered[id] ||
		len(s.opts.Images) > 0 && !slices.Contains(s.opts.Images, id) {
		return nil
	}
	return &image{
		id: id, name: "ec2test-public-" + id, owner: amazonOwnerID, state: "available",
		created: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (s *Server) deregisterImage(f url.Values) (any, error) {
	if err := required(f, "ImageId"); err != nil {
		return nil, err
	}
	id := f.Get("ImageId")
	im := s.images[id]
	if im == nil {
		return nil, amiNotFound(id)
	}
	delete(s.images, id)
	s.imageOrder = slices.DeleteFunc(s.imageOrder, func(x *image) bool { return x == im })
	s.deregistered[id] = true
	if f.Get("DeleteAssociatedSnapshots") == "true" {
		for _, d := range im.devices {
			if sn := s.snapshots[d.snapshot]; sn != nil {
				s.removeSnapshot(sn)
			}
		}
	}
	return &returnResult{Return: true}, nil
}

var imageFilters = map[string]func(*image) []string{
	"image-id":           func(im *image) []string { return []string{im.id} },
	"name":               func(im *image) []string { return []string{im.name} },
	"state":              func(im *image) []string { return []string{im.state} },
	"owner-id":           func(im *image) []string { return []string{im.owner} },
	"description":        func(im *image) []string { return []string{im.description} },
	"is-public":          func(im *image) []string { return []string{strconv.FormatBool(im.owner != ownerID)} },
	"image-type":         func(im *image) []string { return []string{"machine"} },
	"architecture":       func(im *image) []string { return []string{"x86_64"} },
	"root-device-type":   func(im *image) []string { return []string{"ebs"} },
	"source-instance-id": func(im *image) []string { return []string{im.instance} },
	"block-device-mapping.snapshot-id": func(im *image) []string {
		var ids []string
		for _, d := range im.devices {
			ids = append(ids, d.snapshot)
		}
		return ids
	},
	"tag-key":   func(im *image) []string { return im.tagOrder },
	"tag-value": func(im *image) []string { return im.tagValues() },
}

func (s *Server) describeImages(f url.Values) (any, error) {
	ids := list(f, "ImageId")
	if err := idsWithMaxResults(ids, f, "imagesSet"); err != nil {
		return nil, err
	}
	var all []*image
	for _, id := range ids {
		im := s.images[id]
		if im == nil {
			im = s.publicImage(id)
		}
		if im == nil {
			return nil, amiNotFound(id)
		}
		all = append(all, im)
	}
	if len(ids) == 0 {
		all = slices.Clone(s.imageOrder)
		for _, id := range s.opts.Images {
			if im := s.publicImage(id); im != nil {
				all = append(all, im)
			}
		}
	}
	filters, err := parseFilters(f, imageFilters)
	if err != nil {
		return nil, err
	}
	owners := list(f, "Owner")
	var matched []*image
	for _, im := range all {
		if ownedBy(owners, im.owner) && matchFilters(filters, &im.tagged, func(name string) []string { return imageFilters[name](im) }) {
			matched = append(matched, im)
		}
	}
	page, next, err := paginate(matched, f)
	if err != nil {
		return nil, err
	}
	res := &describeImagesResult{NextToken: next}
	for _, im := range page {
		res.ImagesSet.Items = append(res.ImagesSet.Items, im.xml())
	}
	return res, nil
}

type imageDeviceXML struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		SnapshotID          string `xml:"snapshotId"`
		VolumeSize          int    `xml:"volumeSize"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
		VolumeType          string `xml:"volumeType"`
		Iops                int    `xml:"iops,omitempty"`
		Encrypted           bool   `xml:"encrypted"`
	} `xml:"ebs"`
}

type imageXML struct {
	ImageID            string `xml:"imageId"`
	ImageLocation      string `xml:"imageLocation"`
	ImageState         string `xml:"imageState"`
	ImageOwnerID       string `xml:"imageOwnerId"`
	CreationDate       string `xml:"creationDate"`
	IsPublic           bool   `xml:"isPublic"`
	Architecture       string `xml:"architecture"`
	ImageType          string `xml:"imageType"`
	ImageOwnerAlias    string `xml:"imageOwnerAlias,omitempty"`
	Name               string `xml:"name"`
	Description        string `xml:"description,omitempty"`
	RootDeviceType     string `xml:"rootDeviceType"`
	RootDeviceName     string `xml:"rootDeviceName"`
	BlockDeviceMapping struct {
		Items []imageDeviceXML `xml:"item"`
	} `xml:"blockDeviceMapping"`
	VirtualizationType string    `xml:"virtualizationType"`
	Hypervisor         string    `xml:"hypervisor"`
	EnaSupport         bool      `xml:"enaSupport"`
	PlatformDetails    string    `xml:"platformDetails"`
	SourceInstanceID   string    `xml:"sourceInstanceId,omitempty"`
	TagSet             tagSetXML `xml:"tagSet"`
}

func (im *image) xml() imageXML {
	x := imageXML{
		ImageID: im.id, ImageLocation: im.owner + "/" + im.name, ImageState: im.state, ImageOwnerID: im.owner,
		CreationDate: im.created.Format(timeFormat), IsPublic: im.owner != ownerID, Architecture: "x86_64",
		ImageType: "machine", Name: im.name, Description: im.description, RootDeviceType: "ebs",
		RootDeviceName: rootDevice, VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true,
		PlatformDetails: "Linux/UNIX", SourceInstanceID: im.instance, TagSet: im.tagSet(),
	}
	if im.owner == amazonOwnerID {
		x.ImageOwnerAlias = "amazon"
	}
	for _, d := range im.devices {
		var dx imageDeviceXML
		dx.DeviceName = d.device
		dx.Ebs.SnapshotID, dx.Ebs.VolumeSize, dx.Ebs.DeleteOnTermination = d.snapshot, d.size, d.deleteOnTermination
		dx.Ebs.VolumeType, dx.Ebs.Iops = d.typ, d.iops
		x.BlockDeviceMapping.Items = append(x.BlockDeviceMapping.Items, dx)
	}
	return x
}

type createImageResult struct {
	meta
	ImageID string `xml:"imageId"`
}

type describeImagesResult struct {
	meta
	ImagesSet struct {
		Items []imageXML `xml:"item"`
	} `xml:"imagesSet"`
	NextToken string `xml:"nextToken,omitempty"`
}

// Image is a snapshot of one image made here, for tests to inspect.
type Image struct {
	ID, Name, State, InstanceID string
	Rebooted                    bool     // CreateImage rebooted the instance (no NoReboot)
	Snapshots                   []string // of the instance's volumes, oldest volume first
	Created                     time.Time
	Tags                        map[string]string
}

// Images returns the images made here and not deregistered, oldest first.
func (s *Server) Images() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Image, 0, len(s.imageOrder))
	for _, im := range s.imageOrder {
		x := Image{ID: im.id, Name: im.name, State: im.state, InstanceID: im.instance, Rebooted: im.rebooted,
			Created: im.created, Tags: im.tagMap()}
		for _, d := range im.devices {
			x.Snapshots = append(x.Snapshots, d.snapshot)
		}
		out = append(out, x)
	}
	return out
}

// Reboots is how many times CreateImage rebooted instance id.
func (s *Server) Reboots(instanceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reboots[instanceID]
}
