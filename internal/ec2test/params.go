package ec2test

// The Query API's shapes every action shares: flattened lists (Name.N),
// filters with EC2's wildcards, pages (MaxResults, NextToken) and the
// canonical form of a request that idempotency compares.

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// canonical is a request's arguments in a form that compares equal for
// equal arguments: sorted, without what may differ between retries.
func canonical(f url.Values) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		if k != "Action" && k != "Version" && k != "ClientToken" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strings.Join(f[k], ",") + "\n")
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// paginate applies MaxResults (5–1000, as EC2 requires) and NextToken.
func paginate[T any](all []T, f url.Values) (page []T, next string, err error) {
	off := 0
	if t := f.Get("NextToken"); t != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(t, "nt-"))
		if !strings.HasPrefix(t, "nt-") || err != nil || n < 0 || n > len(all) {
			return nil, "", errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value '%s' for nextToken", t)
		}
		off = n
	}
	limit := len(all) - off
	if f.Has("MaxResults") {
		m, err := strconv.Atoi(f.Get("MaxResults"))
		if err != nil || m < 5 || m > 1000 {
			return nil, "", errorf(http.StatusBadRequest, "InvalidParameterValue",
				"Value ( %s ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", f.Get("MaxResults"))
		}
		limit = min(limit, m)
	}
	page = all[off : off+limit]
	if off+limit < len(all) {
		next = "nt-" + strconv.Itoa(off+limit)
	}
	return page, next, nil
}

type filter struct {
	name   string
	values []*regexp.Regexp
}

// matchFilters says whether a resource passes every filter: tag:KEY by its
// tags, any other name by values(name).
func matchFilters(filters []filter, t *tagged, values func(name string) []string) bool {
	for _, f := range filters {
		var have []string
		if key, ok := strings.CutPrefix(f.name, "tag:"); ok {
			v, tagged := t.tags[key]
			if !tagged {
				return false
			}
			have = []string{v}
		} else {
			have = values(f.name)
		}
		if !matchAny(f.values, have) {
			return false
		}
	}
	return true
}

// idsWithMaxResults is EC2's refusal of a page size with a list of ids
// (what it calls param, e.g. "volumeSet").
func idsWithMaxResults(ids []string, f url.Values, param string) error {
	if len(ids) > 0 && f.Has("MaxResults") {
		return errorf(http.StatusBadRequest, "InvalidParameterCombination",
			"The parameter %s cannot be used with the parameter maxResults", param)
	}
	return nil
}

func matchAny(patterns []*regexp.Regexp, have []string) bool {
	for _, p := range patterns {
		for _, h := range have {
			if p.MatchString(h) {
				return true
			}
		}
	}
	return false
}

// parseFilters reads Filter.N.Name and Filter.N.Value.M. Values may hold
// EC2's wildcards, * and ?. An unknown filter name is an error, as on EC2.
func parseFilters[T any](f url.Values, known map[string]T) ([]filter, error) {
	var out []filter
	for _, i := range indices(f, "Filter") {
		p := "Filter." + i
		name := f.Get(p + ".Name")
		if _, ok := known[name]; !ok && !(strings.HasPrefix(name, "tag:") && len(name) > 4) {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		flt := filter{name: name}
		for _, v := range list(f, p+".Value") {
			flt.values = append(flt.values, wildcard(v))
		}
		out = append(out, flt)
	}
	return out, nil
}

func wildcard(v string) *regexp.Regexp {
	q := regexp.QuoteMeta(v)
	q = strings.ReplaceAll(q, `\*`, ".*")
	q = strings.ReplaceAll(q, `\?`, ".")
	return regexp.MustCompile("^" + q + "$")
}

// list reads a flattened list: prefix.1, prefix.2, … (1-based), in index
// order.
func list(f url.Values, prefix string) []string {
	var out []string
	for _, i := range indices(f, prefix) {
		out = append(out, f.Get(prefix+"."+i))
	}
	return out
}

// indices returns the N of every key prefix.N or prefix.N.…, in numeric
// order: the members of a flattened list.
func indices(f url.Values, prefix string) []string {
	seen := map[int]bool{}
	for k := range f {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(num); err == nil && n >= 1 {
			seen[n] = true
		}
	}
	ns := make([]int, 0, len(seen))
	for n := range seen {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return out
}

// required says which of params the request lacks (the first), as EC2
// does: MissingParameter.
func required(f url.Values, params ...string) error {
	for _, p := range params {
		if f.Get(p) == "" {
			return errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter %s", p)
		}
	}
	return nil
}
