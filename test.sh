#!/bin/sh
# Set up what is needed, build, run every test, the aarch64 cross build's
# tests under qemu-user (make test-aarch64, which installs its tools with
# tools/setup-cross.sh), then the mutation check (make mutants: deliberate
# bugs that must turn the tests red). Each part ends with a line "N passed,
# N failed"; the exit status is non-zero on any failure.
cd "$(dirname "$0")"
sh tools/setup.sh || exit 1
make -s test; rc=$?
make -s test-aarch64 || rc=1
make -s mutants || rc=1
exit $rc
