// Package arc holds the ARC-specific pieces of the datasets: grids, the
// dihedral and colour augmentations with their inverses and puzzle names
// (docs/data.md#arc), and the pass@K evaluation with voting
// (docs/arc-scoring.md).
package arc

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Grid is an H x W grid of colours (or tokens), row-major.
type Grid struct {
	H, W  int
	Cells []byte
}

// At returns the cell at row i, column j.
func (g Grid) At(i, j int) byte { return g.Cells[i*g.W+j] }

// Equal reports whether two grids have the same shape and cells.
func (g Grid) Equal(o Grid) bool {
	return g.H == o.H && g.W == o.W && string(g.Cells) == string(o.Cells)
}

// Key is a compact identity of the grid (shape and cells), used where the
// reference hashes grids: equal keys <=> equal grids.
func (g Grid) Key() string {
	return string([]byte{byte(g.H), byte(g.W)}) + string(g.Cells)
}

// Hash is the reference's grid_hash: SHA-256 of the two shape bytes and the
// cells, in hex.
func (g Grid) Hash() string {
	h := sha256.New()
	h.Write([]byte{byte(g.H), byte(g.W)})
	h.Write(g.Cells)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// Lists returns the grid as JSON-ready rows.
func (g Grid) Lists() [][]int {
	out := make([][]int, g.H)
	for i := range out {
		out[i] = make([]int, g.W)
		for j := range out[i] {
			out[i][j] = int(g.At(i, j))
		}
	}
	return out
}

// MarshalJSON writes the grid as a list of rows.
func (g Grid) MarshalJSON() ([]byte, error) { return json.Marshal(g.Lists()) }

// UnmarshalJSON reads a list of rows of colours 0..9, at most 30 x 30, all
// rows of one length (the reference's arc_grid_to_np checks).
func (g *Grid) UnmarshalJSON(b []byte) error {
	var rows [][]int
	if err := json.Unmarshal(b, &rows); err != nil {
		return err
	}
	h := len(rows)
	w := 0
	if h > 0 {
		w = len(rows[0])
	}
	if h == 0 || w == 0 {
		return fmt.Errorf("arc: empty grid (%d rows of %d cells)", h, w)
	}
	if h > MaxSize || w > MaxSize {
		return fmt.Errorf("arc: grid %dx%d larger than %dx%d", h, w, MaxSize, MaxSize)
	}
	cells := make([]byte, 0, h*w)
	for i, r := range rows {
		if len(r) != w {
			return fmt.Errorf("arc: grid row %d has %d cells, row 0 has %d", i, len(r), w)
		}
		for _, v := range r {
			if v < 0 || v > 9 {
				return fmt.Errorf("arc: colour %d outside 0..9", v)
			}
			cells = append(cells, byte(v))
		}
	}
	*g = Grid{H: h, W: w, Cells: cells}
	return nil
}

// MaxSize is the ARC canvas side: grids are at most 30 x 30.
const MaxSize = 30

// Dihedral applies transform t of the dihedral group as the reference's
// dihedral_transform on NumPy arrays: 0 identity, 1 rot90 (counter-
// clockwise), 2 rot180, 3 rot270, 4 flip left-right, 5 flip up-down,
// 6 transpose, 7 flip left-right of rot90 (the anti-transpose).
func Dihedral(g Grid, t int) Grid {
	h, w := g.H, g.W
	var oh, ow int
	var src func(i, j int) int // output (i, j) reads input cell index
	switch t {
	case 0:
		return Grid{h, w, append([]byte(nil), g.Cells...)}
	case 1: // out[i][j] = in[j][w-1-i]
		oh, ow, src = w, h, func(i, j int) int { return j*w + (w - 1 - i) }
	case 2:
		oh, ow, src = h, w, func(i, j int) int { return (h-1-i)*w + (w - 1 - j) }
	case 3: // out[i][j] = in[h-1-j][i]
		oh, ow, src = w, h, func(i, j int) int { return (h-1-j)*w + i }
	case 4:
		oh, ow, src = h, w, func(i, j int) int { return i*w + (w - 1 - j) }
	case 5:
		oh, ow, src = h, w, func(i, j int) int { return (h-1-i)*w + j }
	case 6:
		oh, ow, src = w, h, func(i, j int) int { return j*w + i }
	case 7: // out[i][j] = in[h-1-j][w-1-i]
		oh, ow, src = w, h, func(i, j int) int { return (h-1-j)*w + (w - 1 - i) }
	default:
		panic("arc: dihedral transform " + strconv.Itoa(t))
	}
	out := make([]byte, oh*ow)
	for i := 0; i < oh; i++ {
		for j := 0; j < ow; j++ {
			out[i*ow+j] = g.Cells[src(i, j)]
		}
	}
	return Grid{oh, ow, out}
}

// InverseDihedral lists the transform undoing each transform.
var InverseDihedral = [8]int{0, 3, 2, 1, 4, 5, 6, 7}

// Aug is one augmentation: colour map then dihedral transform.
type Aug struct {
	// T is the dihedral transform 0..7.
	T int
	// Colours maps colour c to Colours[c]; Colours[0] = 0.
	Colours [10]byte
}

// Identity is the augmentation that changes nothing.
var Identity = Aug{Colours: [10]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}

// Apply maps colours then transforms, as the reference's aug.
func (a Aug) Apply(g Grid) Grid {
	m := Grid{g.H, g.W, make([]byte, len(g.Cells))}
	for i, c := range g.Cells {
		m.Cells[i] = a.Colours[c]
	}
	return Dihedral(m, a.T)
}

// Invert undoes Apply: inverse transform, then inverse colour map.
// Cells outside 0..9 are left unchanged.
func (a Aug) Invert(g Grid) Grid {
	var inv [10]byte
	for c, m := range a.Colours {
		inv[m] = byte(c)
	}
	out := Dihedral(g, InverseDihedral[a.T])
	for i, c := range out.Cells {
		if c < 10 {
			out.Cells[i] = inv[c]
		}
	}
	return out
}

// Separator joins a puzzle name and its augmentation in identifiers.
const Separator = "|||"

// Name is the reference's augmented puzzle name: ID|||t<t>|||<d0..d9>.
func (a Aug) Name(id string) string {
	var sb strings.Builder
	sb.WriteString(id + Separator + "t" + strconv.Itoa(a.T) + Separator)
	for _, c := range a.Colours {
		sb.WriteByte('0' + c)
	}
	return sb.String()
}

// ParseName splits an identifier into the original puzzle name and its
// augmentation (Identity for a name without one), as inverse_aug.
func ParseName(name string) (string, Aug, error) {
	parts := strings.Split(name, Separator)
	if len(parts) < 3 {
		return name, Identity, nil
	}
	t, perm := parts[len(parts)-2], parts[len(parts)-1]
	a := Aug{}
	tn, err := strconv.Atoi(strings.TrimPrefix(t, "t"))
	if !strings.HasPrefix(t, "t") || err != nil || tn < 0 || tn > 7 {
		return "", a, fmt.Errorf("arc: name %q: bad transform %q", name, t)
	}
	a.T = tn
	if len(perm) != 10 {
		return "", a, fmt.Errorf("arc: name %q: colour map %q is not 10 digits", name, perm)
	}
	seen := 0
	for i := 0; i < 10; i++ {
		c := perm[i] - '0'
		if c > 9 || seen&(1<<c) != 0 {
			return "", a, fmt.Errorf("arc: name %q: colour map %q is not a permutation", name, perm)
		}
		seen |= 1 << c
		a.Colours[i] = c
	}
	return strings.Join(parts[:len(parts)-2], Separator), a, nil
}
