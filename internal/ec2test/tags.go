package ec2test

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
)

// tagged is the tags of a resource (instance, volume, snapshot, image,
// subnet), kept in the order they were first set: EC2 answers them in an
// order of its own, and a fixed one keeps tests' output stable.
type tagged struct {
	tags     map[string]string
	tagOrder []string
}

func (t *tagged) setTag(k, v string) {
	if t.tags == nil {
		t.tags = map[string]string{}
	}
	if _, ok := t.tags[k]; !ok {
		t.tagOrder = append(t.tagOrder, k)
	}
	t.tags[k] = v
}

func (t *tagged) deleteTag(k string) {
	if _, ok := t.tags[k]; !ok {
		return
	}
	delete(t.tags, k)
	for i, o := range t.tagOrder {
		if o == k {
			t.tagOrder = append(t.tagOrder[:i:i], t.tagOrder[i+1:]...)
			break
		}
	}
}

func (t *tagged) tagValues() []string {
	vs := make([]string, 0, len(t.tagOrder))
	for _, k := range t.tagOrder {
		vs = append(vs, t.tags[k])
	}
	return vs
}

// tagMap is a copy of the tags, for a snapshot a test may keep.
func (t *tagged) tagMap() map[string]string {
	m := map[string]string{}
	maps.Copy(m, t.tags)
	return m
}

func (t *tagged) tagSet() tagSetXML {
	var x tagSetXML
	for _, k := range t.tagOrder {
		x.Items = append(x.Items, tagXML{k, t.tags[k]})
	}
	return x
}

func (t *tagged) setTags(tags []tag) {
	for _, tg := range tags {
		t.setTag(tg.Key, tg.Value)
	}
}

type tag struct{ Key, Value string }

// specTags reads the tags of TagSpecification.N whose ResourceType is typ
// (instance, volume, snapshot, image): one request may tag what it makes
// of each kind differently.
func specTags(f url.Values, typ string) []tag {
	var tags []tag
	for _, spec := range indices(f, "TagSpecification") {
		p := "TagSpecification." + spec
		if f.Get(p+".ResourceType") != typ {
			continue
		}
		for _, i := range indices(f, p+".Tag") {
			tags = append(tags, tag{f.Get(p + ".Tag." + i + ".Key"), f.Get(p + ".Tag." + i + ".Value")})
		}
	}
	return tags
}

// taggable finds the resource id names, by its prefix, as CreateTags and
// DeleteTags do; each kind has its own NotFound code.
func (s *Server) taggable(id string) (*tagged, error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		if err := s.checkIDs([]string{id}); err != nil {
			return nil, err
		}
		return &s.instances[id].tagged, nil
	case "vol":
		v, err := s.volume(id)
		if err != nil {
			return nil, err
		}
		return &v.tagged, nil
	case "snap":
		sn, err := s.snapshot(id)
		if err != nil {
			return nil, err
		}
		return &sn.tagged, nil
	case "ami":
		if im := s.images[id]; im != nil {
			return &im.tagged, nil
		}
		return nil, amiNotFound(id)
	case "subnet":
		sn, err := s.subnet(id)
		if err != nil {
			return nil, err
		}
		return &sn.tagged, nil
	}
	return nil, errorf(http.StatusBadRequest, "InvalidID", "The ID '%s' is not valid", id)
}

// taggables resolves every ResourceId.N before anything changes: a request
// naming one missing resource tags none.
func (s *Server) taggables(f url.Values) ([]*tagged, error) {
	ids := list(f, "ResourceId")
	if len(ids) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ResourceId")
	}
	var ts []*tagged
	for _, id := range ids {
		t, err := s.taggable(id)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (s *Server) createTags(f url.Values) (any, error) {
	ts, err := s.taggables(f)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		for _, i := range indices(f, "Tag") {
			t.setTag(f.Get("Tag."+i+".Key"), f.Get("Tag."+i+".Value"))
		}
	}
	return &returnResult{Return: true}, nil
}

// deleteTags removes Tag.N.Key, only where its value is Tag.N.Value if
// that is given (an empty one too, as EC2 documents); with no Tag.N, every
// tag but AWS's own (aws:…) goes.
func (s *Server) deleteTags(f url.Values) (any, error) {
	ts, err := s.taggables(f)
	if err != nil {
		return nil, err
	}
	keys := indices(f, "Tag")
	for _, t := range ts {
		if len(keys) == 0 {
			for _, k := range append([]string(nil), t.tagOrder...) {
				if !strings.HasPrefix(k, "aws:") {
					t.deleteTag(k)
				}
			}
		}
		for _, i := range keys {
			k, v, withValue := f.Get("Tag."+i+".Key"), f.Get("Tag."+i+".Value"), f.Has("Tag."+i+".Value")
			if have, ok := t.tags[k]; ok && (!withValue || have == v) {
				t.deleteTag(k)
			}
		}
	}
	return &returnResult{Return: true}, nil
}
