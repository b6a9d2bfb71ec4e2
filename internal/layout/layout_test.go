// Package layout_test holds the tree to the shape the README describes:
// imports point one way (cmd → repl → builtins → runtime → lang, with
// internal/ helpers usable from anywhere), no source file grows past 700
// lines and no function past 100 (the lexer's scan, one state machine, is
// the exception). A change that breaks the shape fails here, saying where.
package layout_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cloudspeak/cloudspeak/"

// layers rank the top-level directories: a package may import its own
// layer's and the ones below it, never one above.
var layers = map[string]int{"lang": 0, "runtime": 1, "builtins": 2, "repl": 3, "cmd": 4}

const (
	maxFileLines = 700
	maxFuncLines = 100
)

// longFuncs are the functions allowed past maxFuncLines, by file and name.
var longFuncs = map[string]bool{"lang/lexer.go:scan": true}

// goFiles returns the tree's non-test Go files, by path from the root.
func goFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	root := "../.."
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("only %d Go files under %s: is this the project's tree?", len(files), root)
	}
	return files
}

// layer returns the layer of a path inside the module, or -1 for internal/
// and anything else outside the five.
func layer(path string) int {
	top, _, _ := strings.Cut(path, "/")
	if l, ok := layers[top]; ok {
		return l
	}
	return -1
}

func TestImportDirection(t *testing.T) {
	for path, f := range goFiles(t) {
		from := layer(path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			to := layer(dep)
			switch {
			case strings.HasPrefix(path, "internal/") && to > 0:
				t.Errorf("%s imports %s: internal helpers may use lang, nothing above it", path, dep)
			case from >= 0 && to > from:
				t.Errorf("%s imports %s: imports point cmd → repl → builtins → runtime → lang, never back", path, dep)
			}
		}
	}
}

func TestSizes(t *testing.T) {
	fset := token.NewFileSet()
	for path := range goFiles(t) {
		src, err := os.ReadFile(filepath.Join("../..", path))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(src), "\n"); n > maxFileLines {
			t.Errorf("%s has %d lines, over %d: split it by job", path, n, maxFileLines)
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var name string
			var body *ast.BlockStmt
			switch x := n.(type) {
			case *ast.FuncDecl:
				name, body = x.Name.Name, x.Body
			case *ast.FuncLit:
				name, body = "a function literal", x.Body
			}
			if body == nil {
				return true
			}
			lines := fset.Position(body.End()).Line - fset.Position(n.Pos()).Line + 1
			if lines > maxFuncLines && !longFuncs[path+":"+name] {
				t.Errorf("%s:%d: %s has %d lines, over %d", path, fset.Position(n.Pos()).Line, name, lines, maxFuncLines)
			}
			return true
		})
	}
}

// internalJSON are the files that may encode JSON with encoding/json
// itself: formats only cloudspeak reads back, which are not outputs.
// Everything a user reads goes through internal/jsonout, which holds it
// to the rules of spec §13's "JSON output".
var internalJSON = map[string]string{
	"internal/jsonout/jsonout.go":     "the rules' own place",
	"runtime/boltstore/boltstore.go":  "the state file",
	"builtins/control/control.go":     "the control socket's requests and answers",
	"builtins/local/local.go":         "a local instance's record",
	"builtins/provision/provision.go": "the provisioning still pending",
	"builtins/ec2/generations.go":     "launch generations",
	"builtins/s3/journal.go":          "the multipart upload journal",
	"builtins/cluster/store.go":       "the state and decision log in etcd",
	"builtins/cluster/session.go":     "a member's record in etcd",
	"builtins/cluster/policy.go":      "the cluster's policy in etcd",
	"builtins/cluster/rpc.go":         "commands between daemons",
}

func TestJSONThroughJsonout(t *testing.T) {
	encoders := map[string]bool{"Marshal": true, "MarshalIndent": true, "NewEncoder": true}
	for path, f := range goFiles(t) {
		name := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"encoding/json"` {
				name = "json"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" || internalJSON[path] != "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, isIdent := sel.X.(*ast.Ident); isIdent && id.Name == name && encoders[sel.Sel.Name] {
				t.Errorf("%s: json.%s: write what users read with internal/jsonout (or, for a format only cloudspeak reads, list the file in internalJSON)", path, sel.Sel.Name)
			}
			return true
		})
	}
}
