#!/bin/sh
# Install what depthprune needs to build and test (Debian 12): a C compiler,
# make, and the optional libraries it uses. Does nothing when all are present.
set -e
need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
# python3: the sweep tests parse the JSON and SVG they check with it
command -v python3 >/dev/null 2>&1 || need="$need python3"
# LAPACKE over OpenBLAS: closed-form low-rank recovery (lowrank:R)
[ -f /usr/include/lapacke.h ] || need="$need liblapacke-dev"
{ ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 || [ -f /usr/lib/libopenblas.so ]; } || need="$need libopenblas-dev"
# Open MPI: the MPI build (make MPI=1, ./depthprune-mpi) and its tests (tests/cli_mpi.sh)
{ command -v mpicc && mpicc --showme:compile; } >/dev/null 2>&1 || need="$need libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || need="$need openmpi-bin"
if [ -n "$need" ]; then
    echo "setup: installing$need" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
