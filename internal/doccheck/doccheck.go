// Package doccheck finds the exported names of a Go package that carry no
// doc comment. The public packages (trm at the root, puzzle) are libraries
// read through go doc, so their tests call Check to keep every exported
// type, function, method, constant, variable, struct field and interface
// method documented.
package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Missing parses the non-test Go files of package pkg in dir and returns
// how many exported names (and package comments) it checked, and
// "file:line:col: Name" for each exported name without a doc comment
// (methods as Type.Method, fields as Type.Field), files in name order. Methods
// of unexported types are not checked: go doc does not show them.
func Missing(dir, pkg string) (checked int, missing []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return 0, nil, err
		}
		if f.Name.Name == pkg {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return 0, nil, fmt.Errorf("%s: no Go files of package %s", dir, pkg)
	}
	miss := func(pos token.Pos, name string) {
		missing = append(missing, fset.Position(pos).String()+": "+name)
	}
	fields := func(owner string, fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				if n.IsExported() && f.Doc == nil && f.Comment == nil {
					miss(n.Pos(), owner+"."+n.Name)
				}
			}
		}
	}
	for _, f := range files {
		if f.Doc != nil {
			checked++ // the package comment
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				name := d.Name.Name
				if d.Recv != nil {
					recv := d.Recv.List[0].Type
					if s, ok := recv.(*ast.StarExpr); ok {
						recv = s.X
					}
					if g, ok := recv.(*ast.IndexExpr); ok {
						recv = g.X // a generic type's method: T[E]
					}
					if g, ok := recv.(*ast.IndexListExpr); ok {
						recv = g.X
					}
					id, ok := recv.(*ast.Ident)
					if !ok || !id.IsExported() {
						continue
					}
					name = id.Name + "." + name
				}
				checked++
				if d.Doc == nil {
					miss(d.Pos(), name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						checked++
						if s.Doc == nil && d.Doc == nil {
							miss(s.Pos(), s.Name.Name)
						}
						switch ty := s.Type.(type) {
						case *ast.StructType:
							fields(s.Name.Name, ty.Fields)
						case *ast.InterfaceType:
							fields(s.Name.Name, ty.Methods)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if !n.IsExported() {
								continue
							}
							checked++
							if s.Doc == nil && s.Comment == nil && d.Doc == nil {
								miss(n.Pos(), n.Name)
							}
						}
					}
				}
			}
		}
	}
	return checked, missing, nil
}

// Check fails t with one error per exported name of package pkg in dir
// that has no doc comment, and fails it outright when fewer than min
// names were checked: a walk that found nothing would otherwise pass.
func Check(t testing.TB, dir, pkg string, min int) {
	t.Helper()
	checked, missing, err := Missing(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if checked < min {
		t.Fatalf("%s: only %d exported names found in package %s, expected at least %d: the walk is broken", dir, checked, pkg, min)
	}
	for _, m := range missing {
		t.Errorf("no doc comment: %s", m)
	}
}
