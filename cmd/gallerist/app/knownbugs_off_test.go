//go:build !knownbugs

package app

// withKnownBugs is set by -tags knownbugs: the parts of the cluster test
// that reproduce open cluster bugs (docs/decisions.md) run only then.
const withKnownBugs = false
