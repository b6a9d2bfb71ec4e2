package ec2test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
)

// The XML EC2 sends (research §1.2–1.4). Lists are always written, empty
// ones too (<reservationSet/>), as EC2 does.

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// timeFormat is EC2's: the Go SDK needs the "T" and the zone.
const timeFormat = "2006-01-02T15:04:05.000Z"

// meta starts every success response; note requestId here, RequestID in
// error responses.
type meta struct {
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
}

func (m *meta) setRequestID(id string) { m.Xmlns, m.RequestID = xmlns, id }

type result interface{ setRequestID(string) }

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

// stateCodes are EC2's numeric state codes (the low byte of the code).
var stateCodes = map[string]int{
	"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80,
}

func state(name string) stateXML { return stateXML{stateCodes[name], name} }

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// tagSetXML is every resource's <tagSet>.
type tagSetXML struct {
	Items []tagXML `xml:"item"`
}

type groupXML struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type instanceXML struct {
	InstanceID     string   `xml:"instanceId"`
	ImageID        string   `xml:"imageId"`
	State          stateXML `xml:"instanceState"`
	PrivateDNSName string   `xml:"privateDnsName"`
	DNSName        string   `xml:"dnsName"`
	KeyName        string   `xml:"keyName,omitempty"`
	AmiLaunchIndex int      `xml:"amiLaunchIndex"`
	InstanceType   string   `xml:"instanceType"`
	LaunchTime     string   `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	Monitoring struct {
		State string `xml:"state"`
	} `xml:"monitoring"`
	SubnetID         string `xml:"subnetId,omitempty"`
	VpcID            string `xml:"vpcId,omitempty"`
	PrivateIPAddress string `xml:"privateIpAddress,omitempty"`
	IPAddress        string `xml:"ipAddress,omitempty"`
	GroupSet         struct {
		Items []groupXML `xml:"item"`
	} `xml:"groupSet"`
	RootDeviceType     string `xml:"rootDeviceType"`
	RootDeviceName     string `xml:"rootDeviceName"`
	BlockDeviceMapping struct {
		Items []instanceDeviceXML `xml:"item"`
	} `xml:"blockDeviceMapping"`
	ClientToken string    `xml:"clientToken,omitempty"`
	TagSet      tagSetXML `xml:"tagSet"`
	// Reason is EC2's StateTransitionReason (always sent, empty while
	// the instance has not left pending or running); StateReason is sent
	// once it has.
	Reason      string          `xml:"reason"`
	StateReason *stateReasonXML `xml:"stateReason,omitempty"`
}

type stateReasonXML struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

// instanceDeviceXML is one of an instance's attached volumes.
type instanceDeviceXML struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

type reservationXML struct {
	ReservationID string `xml:"reservationId"`
	OwnerID       string `xml:"ownerId"`
	GroupSet      struct {
		Items []groupXML `xml:"item"`
	} `xml:"groupSet"`
	InstancesSet struct {
		Items []instanceXML `xml:"item"`
	} `xml:"instancesSet"`
}

type runInstancesResult struct {
	meta
	reservationXML
}

type describeInstancesResult struct {
	meta
	ReservationSet struct {
		Items []reservationXML `xml:"item"`
	} `xml:"reservationSet"`
	NextToken string `xml:"nextToken,omitempty"`
}

type stateChangeXML struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  stateXML `xml:"currentState"`
	PreviousState stateXML `xml:"previousState"`
}

type stateChangeResult struct {
	meta
	InstancesSet struct {
		Items []stateChangeXML `xml:"item"`
	} `xml:"instancesSet"`
}

type associateAddressResult struct {
	meta
	Return        bool   `xml:"return"`
	AssociationID string `xml:"associationId"`
}

type addressXML struct {
	PublicIP         string `xml:"publicIp"`
	AllocationID     string `xml:"allocationId"`
	Domain           string `xml:"domain"`
	InstanceID       string `xml:"instanceId,omitempty"`
	AssociationID    string `xml:"associationId,omitempty"`
	PrivateIPAddress string `xml:"privateIpAddress,omitempty"`
}

type describeAddressesResult struct {
	meta
	AddressesSet struct {
		Items []addressXML `xml:"item"`
	} `xml:"addressesSet"`
}

type returnResult struct {
	meta
	Return bool `xml:"return"`
}

// AccountID is the account that owns everything here: the ownerId of
// reservations, snapshots and images, what DescribeImages' Owner "self"
// means.
const AccountID = "123456789012"

const ownerID = AccountID

func (s *Server) instanceXML(in *instance) instanceXML {
	x := instanceXML{
		InstanceID: in.id, ImageID: in.image, State: state(in.state),
		KeyName: in.keyName, AmiLaunchIndex: in.launchIndex, InstanceType: in.typ,
		LaunchTime: in.launched.UTC().Format(timeFormat), SubnetID: in.subnet,
		ClientToken: in.clientToken, IPAddress: in.publicIP,
	}
	x.Placement.AvailabilityZone = in.zone
	if in.subnet != "" {
		x.VpcID = vpcID
	}
	x.RootDeviceType, x.RootDeviceName = "ebs", rootDevice
	for _, v := range s.attached(in.id) {
		var d instanceDeviceXML
		d.DeviceName, d.Ebs.VolumeID, d.Ebs.Status = v.att.device, v.id, v.att.status
		d.Ebs.AttachTime, d.Ebs.DeleteOnTermination = v.att.since.UTC().Format(timeFormat), v.att.deleteOnTermination
		x.BlockDeviceMapping.Items = append(x.BlockDeviceMapping.Items, d)
	}
	x.Placement.Tenancy = "default"
	x.Monitoring.State = "disabled"
	if in.state != "terminated" {
		x.PrivateIPAddress = s.opts.PublicIP
		x.PrivateDNSName = "ip-" + dashed(s.opts.PublicIP) + ".ec2.internal"
	}
	if in.publicIP != "" {
		x.DNSName = "ec2-" + dashed(in.publicIP) + ".compute-1.amazonaws.com"
	}
	for _, g := range in.groups {
		x.GroupSet.Items = append(x.GroupSet.Items, groupXML{GroupID: g, GroupName: g})
	}
	x.TagSet = in.tagSet()
	x.Reason = in.reason.transition
	if in.reason.code != "" {
		x.StateReason = &stateReasonXML{Code: in.reason.code, Message: in.reason.message}
	}
	return x
}

func dashed(ip string) string {
	b := []byte(ip)
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

// apiError is an error EC2 reports: an HTTP status and a code.
type apiError struct {
	status    int
	code, msg string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

func writeResult(w http.ResponseWriter, action, reqID string, res any) {
	r, ok := res.(result)
	if !ok {
		writeError(w, http.StatusInternalServerError, reqID, "InternalError", "no response for "+action)
		return
	}
	r.setRequestID(reqID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := enc.EncodeElement(res, xml.StartElement{Name: xml.Name{Local: action + "Response"}}); err != nil {
		writeError(w, http.StatusInternalServerError, reqID, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write(buf.Bytes())
}

type errorResponse struct {
	XMLName xml.Name `xml:"Response"`
	Errors  struct {
		Error struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
	} `xml:"Errors"`
	RequestID string `xml:"RequestID"`
}

func writeError(w http.ResponseWriter, status int, reqID, code, msg string) {
	var e errorResponse
	e.Errors.Error.Code, e.Errors.Error.Message, e.RequestID = code, msg, reqID
	body, _ := xml.Marshal(e)
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError // a fault injected with a status that is no error's
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(body)
}
