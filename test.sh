#!/bin/sh
# Set up what is needed, build, and run every test. The last line of output
# reads "N passed, N failed"; the exit status is non-zero on any failure.
cd "$(dirname "$0")"
sh tools/setup.sh || exit 1
make -s test
