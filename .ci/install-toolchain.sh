#!/bin/sh
# Install a C++ compiler (Debian's g++) when none is present: the torch-inductor
# runtime compiles models to C++ at load. Never fatal: without one, the
# inductor pairs fail with an error that names the package.
if [ -n "${CXX:-}" ] && command -v "$CXX" >/dev/null 2>&1; then exit 0; fi
command -v g++ >/dev/null 2>&1 && exit 0
command -v clang++ >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "toolchain: no C++ compiler and no apt-get; install g++ or set CXX"; exit 0; }
if [ "$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "toolchain: not root; install a C++ compiler with: sudo apt-get install g++"; exit 0; fi
echo "toolchain: installing Debian package g++ (the torch-inductor runtime compiles models to C++)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null 2>&1
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null 2>&1 ||
    echo "toolchain: apt-get install g++ failed; the inductor pairs will say so"; }
exit 0
