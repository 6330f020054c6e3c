#!/bin/sh
# Compiles the runtime into one static binary named `bootstrap`, ready to pack and deploy.
set -eu
cd "$(dirname "$0")"
cc -static -O2 -o bootstrap bootstrap.c
