package hostsfile

import (
	"net"
	"slices"
	"testing"
)

func TestRewrite(t *testing.T) {
	const debian = "127.0.0.1\tlocalhost\n127.0.1.1\tapp1\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\n"
	for _, tc := range []struct {
		what, old, want string
		shadowed        []int
	}{
		{"an empty file", "", "10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"a file without the line: appended, every line kept", debian,
			debian + "10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"the line replaced in its place",
			"127.0.0.1 localhost\n10.0.0.4 db.internal # cloudspeak:db\n10.0.0.9 other\n",
			"127.0.0.1 localhost\n10.0.0.5 db.internal # cloudspeak:db\n10.0.0.9 other\n", nil},
		{"a renamed name: the pool's line is found by its mark",
			"10.0.0.4 old.internal # cloudspeak:db\n",
			"10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"duplicates of the line dropped, the first's place kept",
			"10.0.0.4 db.internal # cloudspeak:db\n127.0.0.1 localhost\n10.0.0.3 db.internal   # cloudspeak:db  \n",
			"10.0.0.5 db.internal # cloudspeak:db\n127.0.0.1 localhost\n", nil},
		{"another pool's line left alone",
			"10.0.0.7 cache.internal # cloudspeak:dbx\n10.0.0.8 x # cloudspeak:cache\n",
			"10.0.0.7 cache.internal # cloudspeak:dbx\n10.0.0.8 x # cloudspeak:cache\n10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"no newline at the end: one added before the line",
			"127.0.0.1 localhost",
			"127.0.0.1 localhost\n10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"no newline after the last line, which is ours",
			"127.0.0.1 localhost\n10.0.0.4 db.internal # cloudspeak:db",
			"127.0.0.1 localhost\n10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"no newline after another line below ours: kept so",
			"10.0.0.4 db.internal # cloudspeak:db\n127.0.0.1 localhost",
			"10.0.0.5 db.internal # cloudspeak:db\n127.0.0.1 localhost", nil},
		{"CRLF lines kept as they are",
			"127.0.0.1 localhost\r\n10.0.0.4 db.internal # cloudspeak:db\r\n",
			"127.0.0.1 localhost\r\n10.0.0.5 db.internal # cloudspeak:db\n", nil},
		{"a hand-written line that maps the name first is reported",
			"127.0.0.1 localhost\n10.0.0.1 DB.internal db # by hand\n# 10.0.0.2 db.internal\n",
			"127.0.0.1 localhost\n10.0.0.1 DB.internal db # by hand\n# 10.0.0.2 db.internal\n10.0.0.5 db.internal # cloudspeak:db\n", []int{2}},
		{"a mention in a comment alone is not a mapping",
			"10.0.0.9 other # db.internal # cloudspeak:dbx\n",
			"10.0.0.9 other # db.internal # cloudspeak:dbx\n10.0.0.5 db.internal # cloudspeak:db\n", nil},
	} {
		got, shadowed := Rewrite([]byte(tc.old), "db", "db.internal", "10.0.0.5")
		if string(got) != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.what, got, tc.want)
		}
		if !slices.Equal(shadowed, tc.shadowed) {
			t.Errorf("%s: shadowed %v, want %v", tc.what, shadowed, tc.shadowed)
		}
		// Idempotent: the rewritten file is rewritten to itself.
		if again, _ := Rewrite(got, "db", "db.internal", "10.0.0.5"); string(again) != string(got) {
			t.Errorf("%s: not idempotent:\nonce  %q\ntwice %q", tc.what, got, again)
		}
	}
}

func FuzzRewrite(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n10.0.0.4 db.internal # cloudspeak:db"), "10.0.0.5")
	f.Add([]byte("# cloudspeak:db\n\n\r\n"), "::1")
	f.Fuzz(func(t *testing.T, old []byte, ip string) {
		if net.ParseIP(ip) == nil {
			return // hostIP gives Rewrite IPs only
		}
		once, _ := Rewrite(old, "db", "db.internal", ip)
		twice, _ := Rewrite(once, "db", "db.internal", ip)
		if string(once) != string(twice) {
			t.Fatalf("not idempotent on %q:\nonce  %q\ntwice %q", old, once, twice)
		}
	})
}
