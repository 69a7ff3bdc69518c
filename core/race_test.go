//go:build race

package core

// raceEnabled: the race detector makes every vector comparison some ten
// times dearer; tests that index thousands of vectors index fewer.
const raceEnabled = true
