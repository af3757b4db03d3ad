package puzzle

import (
	"errors"
	"fmt"
	"strings"
)

// MazeCharset lists the maze characters in token order: '#' (wall) is
// token 1, ' ' (open) 2, 'S' (start) 3, 'G' (goal) 4, 'o' (path) 5; 0 is
// padding. It is the reference's CHARSET.
const MazeCharset = "# SGo"

// MazeToken is the token of a maze character, 0 for a character outside
// MazeCharset.
func MazeToken(c byte) byte {
	if i := strings.IndexByte(MazeCharset, c); i >= 0 {
		return byte(i + 1)
	}
	return 0
}

// Maze is a square maze as text: N*N characters of MazeCharset in row
// order. A question has one S and one G and no 'o'; its answer marks the
// path with 'o'.
type Maze struct {
	// N is the side of the square.
	N int
	// Cells holds the N*N characters, row by row.
	Cells string
}

// ParseMaze reads a maze as N lines of N characters (the rendered form;
// '\r' is dropped and trailing empty lines ignored) or as one line of N*N
// characters. Every character must be in MazeCharset.
func ParseMaze(text string) (Maze, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var cells string
	n := 0
	switch len(lines) {
	case 0:
		return Maze{}, errors.New("maze: empty text")
	case 1:
		cells = lines[0]
		for n*n < len(cells) {
			n++
		}
		if n*n != len(cells) {
			return Maze{}, fmt.Errorf("maze: one line of %d characters is not a square (write N lines of N characters, or N*N on one line)", len(cells))
		}
	default:
		n = len(lines)
		for i, l := range lines {
			if len(l) != n {
				return Maze{}, fmt.Errorf("maze: line %d has %d characters, a maze of %d lines needs %d on each", i+1, len(l), n, n)
			}
		}
		cells = strings.Join(lines, "")
	}
	if err := checkMazeChars(n, cells); err != nil {
		return Maze{}, fmt.Errorf("maze: %w", err)
	}
	return Maze{N: n, Cells: cells}, nil
}

func checkMazeChars(n int, cells string) error {
	for i := 0; i < len(cells); i++ {
		if MazeToken(cells[i]) == 0 {
			return fmt.Errorf("row %d, column %d: %q is not one of '#', ' ', 'S', 'G', 'o'", i/n+1, i%n+1, cells[i])
		}
	}
	return nil
}

// Tokens encodes the maze for the model (MazeToken of every cell, row by
// row), as the maze builder writes an untransformed maze.
func (m Maze) Tokens() []int32 {
	t := make([]int32, len(m.Cells))
	for i := 0; i < len(m.Cells); i++ {
		t[i] = int32(MazeToken(m.Cells[i]))
	}
	return t
}

// DecodeMaze reads the tokens of an n x n maze; a token outside 1..5
// (padding, or a prediction outside the vocabulary) is an error naming
// the cell.
func DecodeMaze(n int, tokens []int32) (Maze, error) {
	if len(tokens) != n*n {
		return Maze{}, fmt.Errorf("maze: %d tokens, a %dx%d maze has %d", len(tokens), n, n, n*n)
	}
	b := make([]byte, n*n)
	for i, t := range tokens {
		if t < 1 || int(t) > len(MazeCharset) {
			return Maze{}, fmt.Errorf("maze: row %d, column %d holds token %d, not a maze cell (1..%d)", i/n+1, i%n+1, t, len(MazeCharset))
		}
		b[i] = MazeCharset[t-1]
	}
	return Maze{N: n, Cells: string(b)}, nil
}

// String renders the maze as N lines of N characters (no final newline);
// ParseMaze reads it back.
func (m Maze) String() string {
	var b strings.Builder
	for i := 0; i < m.N; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m.Cells[i*m.N : (i+1)*m.N])
	}
	return b.String()
}

// CheckMazeQuestion checks a maze question: n*n cells, one S, one G and
// no path cell 'o'.
func CheckMazeQuestion(n int, q string) error {
	if len(q) != n*n {
		return fmt.Errorf("question of %d cells, a %dx%d maze has %d", len(q), n, n, n*n)
	}
	for _, c := range []byte("SG") {
		switch k := strings.Count(q, string(c)); k {
		case 1:
		case 0:
			return fmt.Errorf("question has no %c (start S and goal G are required)", c)
		default:
			return fmt.Errorf("question has %d %c cells, want one", k, c)
		}
	}
	if i := strings.IndexByte(q, 'o'); i >= 0 {
		return fmt.Errorf("question marks a path cell 'o' at row %d, column %d", i/n+1, i%n+1)
	}
	return nil
}

// CheckMazeCells checks a question (CheckMazeQuestion) and that its
// answer changes nothing but open cells ' ' turned path cells 'o'.
func CheckMazeCells(n int, q, a string) error {
	if err := CheckMazeQuestion(n, q); err != nil {
		return err
	}
	if len(a) != len(q) {
		return fmt.Errorf("answer of %d cells for a question of %d", len(a), len(q))
	}
	for i := 0; i < len(q); i++ {
		if a[i] != q[i] && !(q[i] == ' ' && a[i] == 'o') {
			return fmt.Errorf("answer has %q at row %d, column %d where the question has %q", a[i], i/n+1, i%n+1, q[i])
		}
	}
	return nil
}

// MazePathSteps checks that answer a marks a path for question q (both n
// x n): besides CheckMazeCells, the 'o' cells with S and G must form one
// simple 4-connected path from S to G, with no marked cell off it. It
// returns the path's length in steps; whether it is the shortest is
// MazeDistances' to tell.
func MazePathSteps(n int, q, a string) (int, error) {
	if err := CheckMazeCells(n, q, a); err != nil {
		return 0, err
	}
	s, goal := strings.IndexByte(q, 'S'), strings.IndexByte(q, 'G')
	onPath := func(i int) bool { return a[i] == 'o' || i == s || i == goal }
	at := func(i int) string { return fmt.Sprintf("row %d, column %d", i/n+1, i%n+1) }
	steps, prev, cur := 0, -1, s
	for cur != goal {
		next := -1
		for _, nb := range mazeNeighbours(n, cur) {
			if nb != prev && onPath(nb) {
				if next >= 0 {
					return 0, fmt.Errorf("path branches at %s", at(cur))
				}
				next = nb
			}
		}
		if next < 0 {
			return 0, fmt.Errorf("path breaks off at %s", at(cur))
		}
		prev, cur = cur, next
		steps++
	}
	if marked := strings.Count(a, "o"); marked != steps-1 {
		return 0, fmt.Errorf("%d cells marked but the path from S to G has %d inner cells", marked, steps-1)
	}
	return steps, nil
}

// MazeDistances walks the open cells (everything but '#') of an n x n
// maze from cell from: each cell's distance in steps (-1 when
// unreachable) and its number of shortest paths, saturated at 2 (so 1
// means unique). The maze generator picks goals with it.
func MazeDistances(n int, cells string, from int) (dist, paths []int) {
	dist, paths = make([]int, len(cells)), make([]int, len(cells))
	for i := range dist {
		dist[i] = -1
	}
	dist[from], paths[from] = 0, 1
	queue := []int{from}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, nb := range mazeNeighbours(n, c) {
			if cells[nb] == '#' {
				continue
			}
			switch {
			case dist[nb] < 0:
				dist[nb], paths[nb] = dist[c]+1, paths[c]
				queue = append(queue, nb)
			case dist[nb] == dist[c]+1:
				paths[nb] = min(2, paths[nb]+paths[c])
			}
		}
	}
	return dist, paths
}

// ShortestPath is the length in steps of the shortest route from S to G
// over open cells, -1 when there is none (or no S or G).
func (m Maze) ShortestPath() int {
	s, g := strings.IndexByte(m.Cells, 'S'), strings.IndexByte(m.Cells, 'G')
	if s < 0 || g < 0 || len(m.Cells) != m.N*m.N {
		return -1
	}
	dist, _ := MazeDistances(m.N, m.Cells, s)
	return dist[g]
}

// MazeRoute walks back from cell to along the decreasing distances dist
// of MazeDistances: a shortest route, to first and the start last,
// taking at each step the first neighbour in the order up, down, left,
// right (so the maze generator's answers are reproducible).
func MazeRoute(n int, cells string, dist []int, to int) []int {
	path := []int{to}
	for c := to; dist[c] > 0; {
		for _, nb := range mazeNeighbours(n, c) {
			if cells[nb] != '#' && dist[nb] == dist[c]-1 {
				c = nb
				break
			}
		}
		path = append(path, c)
	}
	return path
}

// Solve marks a shortest route from S to G with 'o' (MazeRoute): the
// answer a maze dataset's label holds when the route is unique.
func (m Maze) Solve() (Maze, error) {
	if err := CheckMazeQuestion(m.N, m.Cells); err != nil {
		return Maze{}, err
	}
	s, g := strings.IndexByte(m.Cells, 'S'), strings.IndexByte(m.Cells, 'G')
	dist, _ := MazeDistances(m.N, m.Cells, s)
	if dist[g] < 0 {
		return Maze{}, errors.New("no route from S to G")
	}
	b := []byte(m.Cells)
	for _, i := range MazeRoute(m.N, m.Cells, dist, g) {
		if i != s && i != g {
			b[i] = 'o'
		}
	}
	return Maze{N: m.N, Cells: string(b)}, nil
}

// mazeNeighbours lists the 4-connected neighbours of cell c.
func mazeNeighbours(n, c int) []int {
	y, x := c/n, c%n
	out := make([]int, 0, 4)
	if y > 0 {
		out = append(out, c-n)
	}
	if y < n-1 {
		out = append(out, c+n)
	}
	if x > 0 {
		out = append(out, c-1)
	}
	if x < n-1 {
		out = append(out, c+1)
	}
	return out
}

// Check checks answer as a solution of the question m: the answer marks
// a simple path from S to G through open cells and changes nothing else.
// It returns the path's length in steps.
func (m Maze) Check(answer Maze) (int, error) {
	if answer.N != m.N {
		return 0, fmt.Errorf("a %dx%d answer to a %dx%d maze", answer.N, answer.N, m.N, m.N)
	}
	return MazePathSteps(m.N, m.Cells, answer.Cells)
}
