// Package docs holds sipsilo's own design documents: architecture.md (the
// message path, the parts and who runs what, storage, interfaces, tests) and
// decisions.md (the rules that govern behaviour, each with its evidence).
//
// It has no code; its tests keep the repository honest about its documents:
// the README's Layout table matches the tree, nothing cites a document that is
// not in the repository, and every citation of these two files names a section
// that exists.
package docs
