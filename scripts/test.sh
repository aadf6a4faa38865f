#!/usr/bin/env bash
# Runs every module's tests (race detector, verbose into a log), prints each
# package's result, the whole log of a module that failed, and one closing
# line "tests: N passed, M failed" counting tests and subtests.
set -uo pipefail
cd "$(dirname "$0")/.."
flags=${GOFLAGS_TEST:--race -count=1 -timeout 25m}
logdir=$(mktemp -d)
status=0
for m in "$@"; do
  echo "== $m"
  log="$logdir/$(echo "$m" | tr / _).log"
  (cd "$m" && go test $flags -v ./... >"$log" 2>&1)
  rc=$?
  grep -E '^(ok|FAIL|\?)[[:space:]]' "$log"
  if [ $rc -ne 0 ]; then
    status=1
    echo "---- $m failed; its full test log follows ----"
    cat "$log"
  fi
done
passed=$(cat "$logdir"/*.log | grep -cE '^[[:space:]]*--- PASS')
failed=$(cat "$logdir"/*.log | grep -cE '^[[:space:]]*--- FAIL')
rm -rf "$logdir"
echo "tests: $passed passed, $failed failed"
exit $status
