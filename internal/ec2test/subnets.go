package ec2test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
)

// The default subnets, one per zone of the region (Options.Subnets nil):
// ids shaped like EC2's, so code that checks their form accepts them.
const (
	SubnetA = "subnet-0000000a" // in REGIONa
	SubnetB = "subnet-0000000b" // in REGIONb
	SubnetC = "subnet-0000000c" // in REGIONc
)

// vpcID is the one VPC every subnet is in.
const vpcID = "vpc-00000001"

// DefaultSubnets are the subnets of a server in region whose
// Options.Subnets is nil: SubnetA in REGIONa, SubnetB in REGIONb, SubnetC
// in REGIONc.
func DefaultSubnets(region string) map[string]string {
	return map[string]string{SubnetA: region + "a", SubnetB: region + "b", SubnetC: region + "c"}
}

type subnet struct {
	id, zone, cidr string
	tagged
}

// initSubnets makes Options.Subnets' subnets, each with its own /24.
func (s *Server) initSubnets() {
	m := s.opts.Subnets
	if m == nil {
		m = DefaultSubnets(s.opts.Region)
	}
	s.subnets = map[string]*subnet{}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		sn := &subnet{id: id, zone: m[id], cidr: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)}
		s.subnets[id] = sn
		s.subnetOrder = append(s.subnetOrder, sn)
	}
}

// validZone says whether zone exists: REGIONa, b and c do, and every
// subnet's zone.
func (s *Server) validZone(zone string) bool {
	r := s.opts.Region
	if zone == r+"a" || zone == r+"b" || zone == r+"c" {
		return true
	}
	for _, sn := range s.subnetOrder {
		if sn.zone == zone {
			return true
		}
	}
	return false
}

func zoneError(zone string) error {
	return errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid availability zone: [%s]", zone)
}

// defaultSubnet is the first subnet in zone, "" if none: where EC2 puts
// an instance launched with a zone but no subnet.
func (s *Server) defaultSubnet(zone string) string {
	for _, sn := range s.subnetOrder {
		if sn.zone == zone {
			return sn.id
		}
	}
	return ""
}

// defaultPlacement is where an instance launched with neither subnet nor
// zone goes: the first subnet, or REGIONa when there are none.
func (s *Server) defaultPlacement() (zone, subnet string) {
	if len(s.subnetOrder) == 0 {
		return s.opts.Region + "a", ""
	}
	return s.subnetOrder[0].zone, s.subnetOrder[0].id
}

// placement reads RunInstances' SubnetId and Placement.AvailabilityZone:
// a subnet decides the zone; a zone alone gets its default subnet.
func (s *Server) placement(f url.Values) (zone, subnet string, err error) {
	subnet, zone = f.Get("SubnetId"), f.Get("Placement.AvailabilityZone")
	switch {
	case subnet != "":
		sn, err := s.subnet(subnet)
		if err != nil {
			return "", "", err
		}
		if zone != "" && zone != sn.zone {
			return "", "", errorf(http.StatusBadRequest, "InvalidParameterValue",
				"The subnet '%s' is in availability zone %s, not %s", subnet, sn.zone, zone)
		}
		return sn.zone, subnet, nil
	case zone != "":
		if !s.validZone(zone) {
			return "", "", zoneError(zone)
		}
		return zone, s.defaultSubnet(zone), nil
	}
	zone, subnet = s.defaultPlacement()
	return zone, subnet, nil
}

func (s *Server) subnet(id string) (*subnet, error) {
	if sn := s.subnets[id]; sn != nil {
		return sn, nil
	}
	return nil, errorf(http.StatusBadRequest, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
}

var subnetFilters = map[string]func(*subnet) []string{
	"subnet-id":         func(sn *subnet) []string { return []string{sn.id} },
	"availability-zone": func(sn *subnet) []string { return []string{sn.zone} },
	"vpc-id":            func(sn *subnet) []string { return []string{vpcID} },
	"cidr-block":        func(sn *subnet) []string { return []string{sn.cidr} },
	"state":             func(sn *subnet) []string { return []string{"available"} },
	"owner-id":          func(sn *subnet) []string { return []string{ownerID} },
	"default-for-az":    func(sn *subnet) []string { return []string{"true"} },
	"tag-key":           func(sn *subnet) []string { return sn.tagOrder },
	"tag-value":         func(sn *subnet) []string { return sn.tagValues() },
}

func (s *Server) describeSubnets(f url.Values) (any, error) {
	ids := list(f, "SubnetId")
	if err := idsWithMaxResults(ids, f, "subnetSet"); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := s.subnet(id); err != nil {
			return nil, err
		}
	}
	filters, err := parseFilters(f, subnetFilters)
	if err != nil {
		return nil, err
	}
	var matched []*subnet
	for _, sn := range s.subnetOrder {
		if len(ids) > 0 && !slices.Contains(ids, sn.id) {
			continue
		}
		if matchFilters(filters, &sn.tagged, func(name string) []string { return subnetFilters[name](sn) }) {
			matched = append(matched, sn)
		}
	}
	page, next, err := paginate(matched, f)
	if err != nil {
		return nil, err
	}
	res := &describeSubnetsResult{NextToken: next}
	for _, sn := range page {
		res.SubnetSet.Items = append(res.SubnetSet.Items, subnetXML{
			SubnetID: sn.id, SubnetArn: "arn:aws:ec2:" + s.opts.Region + ":" + ownerID + ":subnet/" + sn.id,
			State: "available", OwnerID: ownerID, VpcID: vpcID, CidrBlock: sn.cidr,
			AvailableIPAddressCount: 251, AvailabilityZone: sn.zone, DefaultForAz: true,
			MapPublicIPOnLaunch: !s.opts.NoPublicIP, TagSet: sn.tagSet(),
		})
	}
	return res, nil
}

type subnetXML struct {
	SubnetID                string    `xml:"subnetId"`
	SubnetArn               string    `xml:"subnetArn"`
	State                   string    `xml:"state"`
	OwnerID                 string    `xml:"ownerId"`
	VpcID                   string    `xml:"vpcId"`
	CidrBlock               string    `xml:"cidrBlock"`
	AvailableIPAddressCount int       `xml:"availableIpAddressCount"`
	AvailabilityZone        string    `xml:"availabilityZone"`
	DefaultForAz            bool      `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool      `xml:"mapPublicIpOnLaunch"`
	TagSet                  tagSetXML `xml:"tagSet"`
}

type describeSubnetsResult struct {
	meta
	SubnetSet struct {
		Items []subnetXML `xml:"item"`
	} `xml:"subnetSet"`
	NextToken string `xml:"nextToken,omitempty"`
}
