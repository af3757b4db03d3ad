module github.com/tinyrecursive/trm

go 1.26
