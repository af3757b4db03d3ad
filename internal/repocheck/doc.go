// Package repocheck holds checks over the repository's own text rather
// than over any one package's behaviour. Its test reads every tracked text
// file and fails on a citation of a document the repository does not hold
// (a design note, a numbered section of an outside specification, a path
// beside the checkout) and on a pointer into docs/ that does not resolve
// (a missing page, or an anchor no heading of that page produces), so that
// a reader of the repository alone can follow every comment.
package repocheck
