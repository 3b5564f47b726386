#!/usr/bin/env bash
# Changelog fragments and changelogs/changelog.yaml are valid, and CHANGELOG.md is what
# antsibull-changelog generates from them (it is never edited by hand).
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
generated="$(mktemp)"
trap 'rm -f "$generated"' EXIT
antsibull-changelog generate --output "$generated" --output-format md
if ! diff -u CHANGELOG.md "$generated"; then
  echo "CHANGELOG.md differs from what changelogs/changelog.yaml generates (diff above)." >&2
  echo "Fix: do not edit CHANGELOG.md; add a fragment to changelogs/fragments/ (docs/releasing.md)," >&2
  echo "     or run 'antsibull-changelog generate' after changing changelogs/changelog.yaml." >&2
  exit 1
fi
echo "changelog fragments, changelog.yaml and CHANGELOG.md agree"
