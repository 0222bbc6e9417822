#!/usr/bin/env bash
# Regenerates the figures of BENCHMARKS.md, "A million queued": the store at a
# large queue through a real `sipsilo serve` (scripts/bench/scale), before and
# after, from one run. Usage:
#
#   scripts/bench/run.sh [BASE_REV] [N]      # defaults: afd9e20, 1000000
#
# BASE_REV is built in a temporary git worktree, the working tree as it is;
# the two binaries are measured back to back on files of their own in $TMPDIR.
# Only 127.0.0.1 is contacted. Needs ≈ 2 GB free disk at N = 1,000,000.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:-afd9e20}
n=${2:-1000000}
tmp=$(mktemp -d)
cleanup() {
	git worktree remove --force "$tmp/base" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --quiet --detach "$tmp/base" "$base"
(cd "$tmp/base" && go build -o "$tmp/sipsilo-before" .)
go build -o "$tmp/sipsilo-after" .
go build -o "$tmp/scale" ./scripts/bench/scale
echo "before: $(git rev-parse --short "$base"), after: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + working tree')"
"$tmp/scale" -bin "before=$tmp/sipsilo-before" -bin "after=$tmp/sipsilo-after" -n "$n" -dir "$tmp"
