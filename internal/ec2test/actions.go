package ec2test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// actions are the Query-API actions the server answers. Each runs with
// s.mu held and returns a result (see xml.go) or an *apiError.
var actions = map[string]func(*Server, url.Values) (any, error){
	"RunInstances":       (*Server).runInstances,
	"DescribeInstances":  (*Server).describeInstances,
	"TerminateInstances": (*Server).terminateInstances,
	"StopInstances":      (*Server).stopInstances,
	"StartInstances":     (*Server).startInstances,
	"AssociateAddress":   (*Server).associateAddress,
	"DescribeAddresses":  (*Server).describeAddresses,
	"CreateTags":         (*Server).createTags,
	"DeleteTags":         (*Server).deleteTags,
	"DescribeSubnets":    (*Server).describeSubnets,
	"CreateVolume":       (*Server).createVolume,
	"DescribeVolumes":    (*Server).describeVolumes,
	"DeleteVolume":       (*Server).deleteVolume,
	"AttachVolume":       (*Server).attachVolume,
	"DetachVolume":       (*Server).detachVolume,
	"CreateSnapshot":     (*Server).createSnapshot,
	"DescribeSnapshots":  (*Server).describeSnapshots,
	"DeleteSnapshot":     (*Server).deleteSnapshot,
	"CreateImage":        (*Server).createImage,
	"DescribeImages":     (*Server).describeImages,
	"DeregisterImage":    (*Server).deregisterImage,
}

const defaultInstanceType = "m1.small" // EC2's, when a request names none

var (
	amiRE          = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.(nano|micro|small|medium|large|metal|[0-9]*xlarge)$`)
)

type launchParams struct {
	image, typ, keyName, subnet, userData, token string
	zone                                         string
	groups                                       []string
	devices                                      []volumeSpec // each instance's volumes
}

func (s *Server) runInstances(f url.Values) (any, error) {
	token := f.Get("ClientToken")
	if len(token) > 64 || !isASCII(token) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue",
			"Value (%s) for parameter clientToken is invalid. The token must be at most 64 ASCII characters.", token)
	}
	canon := canonical(f)
	if r, ok := s.reservations[token]; ok && token != "" {
		// EC2's idempotency: the same token and arguments get the first
		// reply again (with today's states), other arguments an error.
		if r.params != canon {
			return nil, errorf(http.StatusBadRequest, "IdempotentParameterMismatch",
				"Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
		}
		return s.runResult(r), nil
	}
	p, err := s.launchParams(f, token)
	if err != nil {
		return nil, err
	}
	minCount, err1 := strconv.Atoi(f.Get("MinCount"))
	maxCount, err2 := strconv.Atoi(f.Get("MaxCount"))
	if !f.Has("MinCount") || !f.Has("MaxCount") {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	}
	if err1 != nil || err2 != nil || minCount < 1 || maxCount < minCount {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue",
			"MinCount (%s) and MaxCount (%s) must be integers with 1 <= MinCount <= MaxCount.", f.Get("MinCount"), f.Get("MaxCount"))
	}
	// An account's limit, so no request can make the server launch
	// millions of instances.
	const accountLimit = 1000
	if minCount > accountLimit {
		return nil, errorf(http.StatusBadRequest, "InstanceLimitExceeded",
			"You have requested more instances (%d) than your current instance limit of %d allows.", minCount, accountLimit)
	}
	n := min(maxCount, accountLimit)
	if s.opts.Capacity > 0 {
		free := s.opts.Capacity - s.live()
		if free < minCount {
			return nil, errorf(s.opts.CapacityStatus, "InsufficientInstanceCapacity",
				"We currently do not have sufficient %s capacity in the Availability Zone you requested (%s).", p.typ, p.zone)
		}
		n = min(n, free)
	}
	tags, volumeTags := specTags(f, "instance"), specTags(f, "volume")
	r := &reservation{id: newID("r-"), params: canon}
	for i := range n {
		in := s.launch(p, r.id, i)
		s.failBoot(in)
		in.setTags(tags)
		s.attachBlockDevices(in, p.devices, volumeTags)
		r.instances = append(r.instances, in)
	}
	if token != "" {
		s.reservations[token] = r
	}
	return s.runResult(r), nil
}

// launchParams reads and checks what RunInstances launches: image, type,
// user data, placement and block devices.
func (s *Server) launchParams(f url.Values, token string) (launchParams, error) {
	p := launchParams{
		image: f.Get("ImageId"), typ: f.Get("InstanceType"), keyName: f.Get("KeyName"),
		userData: f.Get("UserData"), token: token,
		groups: append(list(f, "SecurityGroupId"), list(f, "SecurityGroup")...),
	}
	if err := s.launchable(p.image); err != nil {
		return p, err
	}
	if p.typ == "" {
		p.typ = defaultInstanceType
	}
	if !s.validType(p.typ) {
		return p, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter instanceType is invalid.", p.typ)
	}
	if p.userData != "" {
		if _, err := base64.StdEncoding.DecodeString(p.userData); err != nil {
			return p, errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
	}
	var err error
	if p.zone, p.subnet, err = s.placement(f); err != nil {
		return p, err
	}
	p.devices, err = s.blockDevices(f, p.image)
	return p, err
}

func (s *Server) runResult(r *reservation) *runInstancesResult {
	res := &runInstancesResult{}
	res.reservationXML = s.reservationXML(r.id, r.instances)
	return res
}

func (s *Server) reservationXML(id string, ins []*instance) reservationXML {
	x := reservationXML{ReservationID: id, OwnerID: ownerID}
	for _, in := range ins {
		x.InstancesSet.Items = append(x.InstancesSet.Items, s.instanceXML(in))
	}
	return x
}

func (s *Server) validType(t string) bool {
	if len(s.opts.InstanceTypes) > 0 {
		return slices.Contains(s.opts.InstanceTypes, t)
	}
	return instanceTypeRE.MatchString(t)
}

// live counts the instances that take capacity: pending and running.
func (s *Server) live() int {
	n := 0
	for _, in := range s.order {
		if in.state == "pending" || in.state == "running" {
			n++
		}
	}
	return n
}

// launch adds an instance, pending for BootDelay; the caller holds s.mu.
func (s *Server) launch(p launchParams, resID string, index int) *instance {
	now := s.now().UTC().Truncate(time.Millisecond)
	// Launch times are distinct, so launch order is visible in them as it
	// is on EC2, where launches are seconds apart.
	if !now.After(s.lastLaunch) {
		now = s.lastLaunch.Add(time.Millisecond)
	}
	s.lastLaunch = now
	if p.zone == "" {
		p.zone, p.subnet = s.defaultPlacement()
	}
	in := &instance{
		id: newID("i-"), reservation: resID, image: p.image, typ: p.typ, keyName: p.keyName,
		subnet: p.subnet, zone: p.zone, groups: p.groups, userData: p.userData, clientToken: p.token,
		launchIndex: index, launched: now,
	}
	if !s.opts.NoPublicIP {
		in.publicIP = s.opts.PublicIP
	}
	s.boot(in)
	s.instances[in.id] = in
	s.order = append(s.order, in)
	return in
}

// boot makes in pending for BootDelay, or running at once.
func (s *Server) boot(in *instance) {
	if s.opts.BootDelay <= 0 {
		in.state, in.until = "running", time.Time{}
		return
	}
	in.state, in.until = "pending", s.now().Add(s.opts.BootDelay)
}

func (s *Server) describeInstances(f url.Values) (any, error) {
	ids := list(f, "InstanceId")
	if err := idsWithMaxResults(ids, f, "instancesSet"); err != nil {
		return nil, err
	}
	if err := s.checkIDs(ids); err != nil {
		return nil, err
	}
	filters, err := parseFilters(f, instanceFilters)
	if err != nil {
		return nil, err
	}
	var matched []*instance
	for _, in := range s.order {
		if len(ids) > 0 && !slices.Contains(ids, in.id) {
			continue
		}
		if s.matchInstance(in, filters) {
			matched = append(matched, in)
		}
	}
	page, next, err := paginate(matched, f)
	if err != nil {
		return nil, err
	}
	res := &describeInstancesResult{NextToken: next}
	// One item per reservation, in the order its first instance appears.
	byRes := map[string]int{}
	var groups [][]*instance
	for _, in := range page {
		i, ok := byRes[in.reservation]
		if !ok {
			i = len(groups)
			byRes[in.reservation] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], in)
	}
	for _, g := range groups {
		res.ReservationSet.Items = append(res.ReservationSet.Items, s.reservationXML(g[0].reservation, g))
	}
	return res, nil
}

// checkIDs reports malformed and unknown instance ids as EC2 does: all
// the unknown ones in one error.
func (s *Server) checkIDs(ids []string) error {
	var missing []string
	for _, id := range ids {
		if !strings.HasPrefix(id, "i-") || len(id) < 3 {
			return errorf(http.StatusBadRequest, "InvalidInstanceID.Malformed", "Invalid id: %q", id)
		}
		if _, ok := s.instances[id]; !ok {
			missing = append(missing, id)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	return errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
}

// instanceFilters are the DescribeInstances filters the server knows,
// besides tag:KEY; each gives an instance's values for the filter.
var instanceFilters = map[string]func(*instance) []string{
	"instance-id":         func(in *instance) []string { return []string{in.id} },
	"instance-state-name": func(in *instance) []string { return []string{in.state} },
	"instance-state-code": func(in *instance) []string { return []string{strconv.Itoa(stateCodes[in.state])} },
	"client-token":        func(in *instance) []string { return []string{in.clientToken} },
	"instance-type":       func(in *instance) []string { return []string{in.typ} },
	"image-id":            func(in *instance) []string { return []string{in.image} },
	"key-name":            func(in *instance) []string { return []string{in.keyName} },
	"subnet-id":           func(in *instance) []string { return []string{in.subnet} },
	"availability-zone":   func(in *instance) []string { return []string{in.zone} },
	"vpc-id": func(in *instance) []string {
		if in.subnet == "" {
			return nil
		}
		return []string{vpcID}
	},
	"reservation-id": func(in *instance) []string { return []string{in.reservation} },
	"ip-address":     func(in *instance) []string { return []string{in.publicIP} },
	"tag-key":        func(in *instance) []string { return in.tagOrder },
	"tag-value":      func(in *instance) []string { return in.tagValues() },
}

func (s *Server) matchInstance(in *instance, filters []filter) bool {
	return matchFilters(filters, &in.tagged, func(name string) []string { return instanceFilters[name](in) })
}

func (s *Server) terminateInstances(f url.Values) (any, error) {
	return s.changeStates(f, func(in *instance) error {
		s.terminate(in, s.userShutdown())
		return nil
	})
}

// terminate starts shutting in down, for why; the caller holds s.mu.
func (s *Server) terminate(in *instance, why stateReason) {
	if in.state == "shutting-down" || in.state == "terminated" {
		return
	}
	in.reason, in.bootFail = why, nil
	// until is never zero here: with no delay, the next advance (the
	// next request) finds it terminated, after this reply said
	// shutting-down, as EC2's does.
	in.state, in.until = "shutting-down", s.now().Add(max(s.opts.TerminateDelay, 0))
	for _, a := range s.addresses {
		if a.instance == in.id {
			a.instance, a.assoc = "", ""
		}
	}
}

func (s *Server) stopInstances(f url.Values) (any, error) {
	return s.changeStates(f, func(in *instance) error {
		switch in.state {
		case "pending", "running":
			in.state, in.until = "stopping", s.now().Add(max(s.opts.TerminateDelay, 0))
			in.reason, in.bootFail = s.userShutdown(), nil
		case "shutting-down", "terminated":
			return errorf(http.StatusBadRequest, "IncorrectInstanceState",
				"The instance '%s' is not in a state from which it can be stopped.", in.id)
		}
		return nil
	})
}

func (s *Server) startInstances(f url.Values) (any, error) {
	return s.changeStates(f, func(in *instance) error {
		switch in.state {
		case "stopped":
			s.boot(in)
			in.reason = stateReason{}
		case "stopping", "shutting-down", "terminated":
			return errorf(http.StatusBadRequest, "IncorrectInstanceState",
				"The instance '%s' is not in a state from which it can be started.", in.id)
		}
		return nil
	})
}

// changeStates applies change to each of InstanceId.N, all or none, and
// replies with each one's previous and current state.
func (s *Server) changeStates(f url.Values, change func(*instance) error) (any, error) {
	ids := list(f, "InstanceId")
	if len(ids) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	if err := s.checkIDs(ids); err != nil {
		return nil, err
	}
	prev := make([]string, len(ids))
	for i, id := range ids {
		prev[i] = s.instances[id].state
		if err := change(s.instances[id]); err != nil {
			return nil, err
		}
	}
	res := &stateChangeResult{}
	for i, id := range ids {
		res.InstancesSet.Items = append(res.InstancesSet.Items, stateChangeXML{
			InstanceID: id, CurrentState: state(s.instances[id].state), PreviousState: state(prev[i]),
		})
	}
	return res, nil
}

func (s *Server) associateAddress(f url.Values) (any, error) {
	alloc, pub, id := f.Get("AllocationId"), f.Get("PublicIp"), f.Get("InstanceId")
	var a *address
	switch {
	case alloc != "":
		if a = s.addresses[alloc]; a == nil {
			return nil, errorf(http.StatusBadRequest, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", alloc)
		}
	case pub != "":
		for _, x := range s.addresses {
			if x.publicIP == pub {
				a = x
			}
		}
		if a == nil {
			return nil, errorf(http.StatusBadRequest, "InvalidAddress.NotFound", "Address '%s' not found.", pub)
		}
	default:
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "Either AllocationId or PublicIp must be specified")
	}
	if id == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	if err := s.checkIDs([]string{id}); err != nil {
		return nil, err
	}
	in := s.instances[id]
	if in.state != "running" && in.state != "stopped" {
		return nil, errorf(http.StatusBadRequest, "IncorrectInstanceState",
			"The instance '%s' is not in a valid state for this operation.", id)
	}
	if a.instance == id {
		return &associateAddressResult{Return: true, AssociationID: a.assoc}, nil
	}
	if a.instance != "" {
		if f.Get("AllowReassociation") != "true" {
			return nil, errorf(http.StatusBadRequest, "Resource.AlreadyAssociated",
				"resource %s is already associated with associate-id %s", a.allocation, a.assoc)
		}
		// The instance it leaves gets an ordinary public address again.
		if old := s.instances[a.instance]; old != nil && !s.opts.NoPublicIP {
			old.publicIP = s.opts.PublicIP
		}
	}
	// An instance has one public address: another EIP on it comes off.
	for _, x := range s.addresses {
		if x != a && x.instance == id {
			x.instance, x.assoc = "", ""
		}
	}
	a.instance, a.assoc = id, newID("eipassoc-")
	in.publicIP = a.publicIP
	return &associateAddressResult{Return: true, AssociationID: a.assoc}, nil
}

var addressFilters = map[string]func(*address) string{
	"allocation-id":  func(a *address) string { return a.allocation },
	"public-ip":      func(a *address) string { return a.publicIP },
	"instance-id":    func(a *address) string { return a.instance },
	"association-id": func(a *address) string { return a.assoc },
	"domain":         func(a *address) string { return "vpc" },
}

func (s *Server) describeAddresses(f url.Values) (any, error) {
	allocs, ips := list(f, "AllocationId"), list(f, "PublicIp")
	for _, id := range allocs {
		if s.addresses[id] == nil {
			return nil, errorf(http.StatusBadRequest, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
		}
	}
	filters, err := parseFilters(f, addressFilters)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(s.addresses))
	for k := range s.addresses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := &describeAddressesResult{}
	for _, k := range keys {
		a := s.addresses[k]
		if len(allocs) > 0 && !slices.Contains(allocs, a.allocation) || len(ips) > 0 && !slices.Contains(ips, a.publicIP) {
			continue
		}
		ok := true
		for _, flt := range filters {
			if strings.HasPrefix(flt.name, "tag:") || !matchAny(flt.values, []string{addressFilters[flt.name](a)}) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		x := addressXML{PublicIP: a.publicIP, AllocationID: a.allocation, Domain: "vpc", InstanceID: a.instance, AssociationID: a.assoc}
		if a.instance != "" {
			x.PrivateIPAddress = s.opts.PublicIP
		}
		res.AddressesSet.Items = append(res.AddressesSet.Items, x)
	}
	return res, nil
}
