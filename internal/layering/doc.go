// Package layering holds, as tests, the dependency rules of the tree
// (docs/ARCHITECTURE.md): which packages may link what. It has no code;
// a rule broken by a new import fails `make test` with the chain to fix.
package layering
