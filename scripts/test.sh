#!/usr/bin/env bash
# The test suite: lint, unit tests, then the Molecule scenarios.
# Usage: scripts/test.sh [lint|unit|integration|molecule]...   (default: all, in that order)
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
stages=("$@")
((${#stages[@]})) || stages=(lint unit integration molecule)
passed=0 failed=0 failures=() timings=()

run_stage() {
  local name=$1 start=$SECONDS status=ok
  shift
  log "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    status=FAILED
  fi
  timings+=("$(printf '%5ds  %-6s %s' $((SECONDS - start)) "$status" "$name")")
}

for stage in "${stages[@]}"; do
  case $stage in
    lint)
      run_stage "yamllint" yamllint --strict .
      run_stage "ansible-lint (production profile)" ansible-lint --offline
      run_stage "changelog (antsibull-changelog lint)" scripts/check-changelog.sh
      ;;
    unit)
      run_stage "pytest unit tests" python -m pytest -q tests/unit
      run_stage "collection build and install" scripts/check-collection-build.sh
      ;;
    integration)
      if [[ -d tests/integration ]]; then
        run_stage "integration tests (bad input, check mode)" python -m pytest -q tests/integration
      fi
      ;;
    molecule)
      for scenario in default nvidia_driver fleet ray; do
        [[ -f molecule/$scenario/molecule.yml ]] || continue
        run_stage "molecule test -s $scenario" molecule test -s "$scenario"
      done
      if [[ -x molecule/conda/run.sh ]]; then
        run_stage "molecule conda scenario" molecule/conda/run.sh
      fi
      ;;
    *)
      echo "unknown stage $stage (use lint, unit, integration or molecule)" >&2
      exit 2
      ;;
  esac
done

log "Summary"
printf '%s\n' "${timings[@]}"
((failed == 0)) || printf 'failed stage: %s\n' "${failures[@]}"
echo "stages: $passed passed, $failed failed"
((failed == 0))
