package puzzle_test

import (
	"testing"

	"github.com/tinyrecursive/trm/internal/doccheck"
)

// TestEveryExportedNameDocumented: the package is a public library, so
// every exported type, function, method, constant, variable, struct field
// and interface method carries a doc comment.
func TestEveryExportedNameDocumented(t *testing.T) {
	doccheck.Check(t, ".", "puzzle", 50)
}
