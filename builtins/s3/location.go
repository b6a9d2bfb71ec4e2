package s3

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Location is one side of a sync: a local directory, or the objects of a
// bucket under a prefix.
type Location struct {
	Bucket string // set for s3://BUCKET/PREFIX
	Prefix string // "" (the whole bucket) or ending in "/"
	Path   string // a local directory, absolute
}

// IsS3 says whether the location is in object storage.
func (l Location) IsS3() bool { return l.Bucket != "" }

func (l Location) String() string {
	if l.IsS3() {
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return l.Path
}

// ParseLocation reads a sync side: `s3://BUCKET[/PREFIX]`, or a local
// path, taken relative to dir when it is not absolute. A prefix names a
// "directory": s3://b/www holds the keys under "www/", never "www2".
func ParseLocation(s, dir string) (Location, error) {
	if rest, ok := strings.CutPrefix(s, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if !validBucket(bucket) {
			return Location{}, fmt.Errorf("invalid S3 bucket name %q in %s: bucket names are 3 to 63 lowercase letters, digits, '.' and '-'", bucket, s)
		}
		prefix = strings.Trim(prefix, "/")
		if prefix != "" {
			prefix += "/"
		}
		return Location{Bucket: bucket, Prefix: prefix}, nil
	}
	if strings.Contains(s, "://") {
		return Location{}, fmt.Errorf("unsupported URL %s: sync copies between local paths and s3://BUCKET/PREFIX", s)
	}
	if s == "" {
		return Location{}, fmt.Errorf("empty path")
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return Location{Path: filepath.Clean(p)}, nil
}

// validBucket follows S3's rules for new buckets, as the checker does.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || (c == '.' || c == '-') && i > 0 && i < len(b)-1
		if !ok {
			return false
		}
	}
	return true
}

// overlaps says whether one location lies inside the other: a sync from
// a directory into itself would copy its own output.
func overlaps(a, b Location) bool {
	if a.IsS3() != b.IsS3() {
		return false
	}
	if a.IsS3() {
		return a.Bucket == b.Bucket && (strings.HasPrefix(a.Prefix, b.Prefix) || strings.HasPrefix(b.Prefix, a.Prefix))
	}
	within := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	return within(a.Path, b.Path) || within(b.Path, a.Path)
}
