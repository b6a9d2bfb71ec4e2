package cluster

// How the units are shared out among the daemons.

import (
	"hash/fnv"
	"slices"
	"strings"
)

// Assign shares units out among members, each at most its fair share
// (the units over the members, rounded up): a unit goes to the first
// member with room in an order hashed from the unit and the members'
// names (rendezvous hashing with bounded loads), so every daemon computes
// the same, and few units move when a member comes or goes. A unit tied
// to a host (hosts) goes only to a member on that host, or to nobody.
func Assign(units []string, members map[string]Member, hosts map[string]string) map[string]string {
	out := map[string]string{}
	if len(members) == 0 {
		return out
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.Sort(names)
	share := (len(units) + len(names) - 1) / len(names)
	load := map[string]int{}
	// Tied units first: they have fewer places to go.
	ordered := slices.Clone(units)
	slices.SortStableFunc(ordered, func(a, b string) int {
		ta, tb := hosts[a] != "", hosts[b] != ""
		switch {
		case ta && !tb:
			return -1
		case !ta && tb:
			return 1
		}
		return 0
	})
	for _, u := range ordered {
		ranked := slices.Clone(names)
		slices.SortFunc(ranked, func(a, b string) int {
			ha, hb := score(u, a), score(u, b)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return strings.Compare(a, b)
		})
		chosen := ""
		for _, m := range ranked {
			if h := hosts[u]; h != "" && members[m].Host != h {
				continue
			}
			if chosen == "" {
				chosen = m // over its share if it must: a tied unit has no other place
			}
			if load[m] < share {
				chosen = m
				break
			}
		}
		if chosen != "" {
			out[u] = chosen
			load[chosen]++
		}
	}
	return out
}

func score(unit, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(unit))
	h.Write([]byte{0})
	h.Write([]byte(member))
	return h.Sum64()
}
