package puzzle_test

import (
	"fmt"

	"github.com/tinyrecursive/trm/puzzle"
)

// Parse a 4x4 Sudoku, encode it for a model, and judge two answers.
func ExampleParseSudoku() {
	q, err := puzzle.ParseSudoku("1.3. .... ...4 ...2")
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Render())
	fmt.Println("tokens:", q.Tokens())

	c := puzzle.For(16, 6) // a 4x4 Sudoku model: 16 cells, vocabulary 6
	good, _ := puzzle.ParseSudoku("1234 3412 2143 4321")
	label, _ := puzzle.ParseSudoku("1432 3214 2143 4321")
	fmt.Println(q.Check(good))
	fmt.Println(c.Check(q.Tokens(), good.Tokens(), label.Tokens()))
	// Output:
	// 1 . | 3 .
	// . . | . .
	// ----+----
	// . . | . 4
	// . . | . 2
	// tokens: [2 1 4 1 1 1 1 1 1 1 1 5 1 1 1 3]
	// answer has 3 at row 3, column 4, where the question gives 4
	// not valid (Sudoku rules and givens): answer has 3 at row 3, column 4, where the question gives 4; does not match the label
}

// Check a path drawn through a maze.
func ExampleMaze_Check() {
	q, _ := puzzle.ParseMaze("#####\n" +
		"#S  #\n" +
		"### #\n" +
		"#G  #\n" +
		"#####")
	path, _ := puzzle.ParseMaze("#####\n" +
		"#Soo#\n" +
		"###o#\n" +
		"#Goo#\n" +
		"#####")
	steps, err := q.Check(path)
	fmt.Println(steps, err, q.ShortestPath())

	cut, _ := puzzle.ParseMaze("#####\n" +
		"#Soo#\n" +
		"### #\n" +
		"#Goo#\n" +
		"#####")
	_, err = q.Check(cut)
	fmt.Println(err)

	c := puzzle.MazeCodec{N: 5}
	fmt.Println(c.Check(q.Tokens(), path.Tokens(), path.Tokens()))
	// Output:
	// 6 <nil> 6
	// path breaks off at row 2, column 4
	// valid (a path from S to G through open cells, nothing else changed); path of 6 steps, the shortest is 6; matches the label
}

// Vote over a model's predictions for a task in two versions and write
// the two attempts of a Kaggle submission.
func ExampleNewARCVote() {
	task := puzzle.ARCTask{Name: "flip"}
	in, _ := puzzle.ParseGrid("12\n00")
	out, _ := puzzle.ParseGrid("00\n12")
	task.Train = []puzzle.Pair{{Input: in, Output: out}}
	test, _ := puzzle.ParseGrid("30\n00")
	want, _ := puzzle.ParseGrid("00\n30")
	task.Test = []puzzle.Pair{{Input: test, Output: want}}

	versions := puzzle.DrawARCVersions(1, 1) // the identity and one augmentation
	vote := puzzle.NewARCVote(task, versions)
	for _, q := range puzzle.ARCQueries(task, versions) {
		// A model would predict here; this one answers right in every version.
		pred := puzzle.ARCTokens(q.Version.Aug.Apply(want))
		if err := vote.Add(q, pred, 1.0); err != nil {
			panic(err)
		}
	}
	r := vote.Result()
	fmt.Println(puzzle.DescribeARCTask(task))
	fmt.Println(puzzle.DescribeARCResult(r))
	fmt.Println(string(r.Submission.MarshalPy()))
	// Output:
	// ARC task flip: 1 demonstration pairs, 1 test inputs
	// demonstration 0 (2x2 -> 2x2):
	//   12  ->  00
	//   00      12
	// test 0 (2x2, expected 2x2):
	//   30  ->  00
	//   00      30
	// ARC task flip
	// test 0: correct: attempt 1 is the expected output
	//   attempt 1 (2x2), attempt 2 (2x2):
	//   00   |   00
	//   30       30
	// {"flip": [{"attempt_1": [[0, 0], [3, 0]], "attempt_2": [[0, 0], [3, 0]]}]}
}
