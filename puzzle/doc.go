// Package puzzle converts puzzles between the forms people write them in
// and the token sequences a Tiny Recursive Model reads and predicts, and
// checks a model's answers. It is the library behind solving and
// inspecting datasets, and it encodes exactly as the dataset builders of
// trainer/data/build do (they call it), so a puzzle typed by hand meets
// the model in the form the model was trained on:
//
//   - Sudoku, 4x4 and 9x9: digits with '.', '0' or '_' for blanks; token
//     = digit + 1, a blank is token 1, 0 is padding (vocabulary n + 2).
//   - Mazes: square text over MazeCharset ('#' wall, ' ' open, 'S'
//     start, 'G' goal, 'o' path) as tokens 1..5 (vocabulary 6).
//   - ARC: task JSON in, test inputs on the 30x30 canvas with the
//     end-of-grid marker, the dihedral and colour augmentations and their
//     inverses, voting across augmentations (trainer/data/arc's), and the
//     two attempts of a Kaggle submission out.
//   - Raw tokens for any other dataset.
//
// Every codec checks answers the same way: whether the answer obeys the
// puzzle's rules (a Verdict's Valid) and whether it equals the label on
// every supervised position (MatchesLabel), the test of the trainer's
// exact accuracy.
//
// A program that solves puzzles picks the codec from the model's shape,
// For(seqLen, vocabSize), encodes the puzzle with Codec.Encode, echoes it
// with Describe, runs the model and shows each prediction with
// DescribeAnswer (or Codec.Render and Codec.Check).
//
// An ARC task goes through its own steps, because the model sees it in
// several augmented versions: ReadARCTask reads the task (SelectTest keeps
// one test input), ARCVersions finds the versions a dataset holds for it
// (with the puzzle identifiers the model learned) or DrawARCVersions draws
// some, ARCQueries makes one model input per test input and version,
// ARCVote.Add takes each prediction back through its version's inverse
// augmentation, and ARCVote.Result ranks the grids into the two attempts
// of a submission. DescribeARCTask and DescribeARCResult show both ends.
//
// ReadExample reads one example of a dataset directory for display.
package puzzle
