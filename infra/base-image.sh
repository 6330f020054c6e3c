#!/usr/bin/env bash
# Builds the base runtime image from this host's own Node binary and the libraries it links,
# because no registry can be reached to pull one. Usage: infra/base-image.sh IMAGE_TAG
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
image=${1:?usage: base-image.sh IMAGE_TAG}
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" --version)

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{usr/local/bin,bin,etc,tmp,work,app}
cp "$node_bin" "$rootfs/usr/local/bin/node"
# What Node links, plus the C runtime libraries that prebuilt native add-ons (.node files) commonly
# link and Node itself does not (librt, libutil, libresolv...).
libc_dir=$(dirname "$(ldd "$node_bin" | grep -o '/[^ ]*/libc\.so\.[0-9]*')")
extra_libs=$(for name in librt.so.1 libutil.so.1 libresolv.so.2 libdl.so.2 libpthread.so.0 libm.so.6 libgcc_s.so.1 libstdc++.so.6; do
  if [[ -e "$libc_dir/$name" ]]; then echo "$libc_dir/$name"; fi
done)
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*') $extra_libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
# A static shell and HTTP client (busybox: sh, wget, sed...) so that a custom runtime's
# `bootstrap` can be a plain shell script.
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
done
# Functions run as uid 10001 (SANDBOX_USER in packages/shared); a passwd entry keeps os.userInfo() working.
printf 'root:x:0:0:root:/root:/sbin/nologin\nwharf:x:10001:10001:wharf function:/work:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nwharf:x:10001:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV NODE_ENV=production' \
  --change "LABEL wharf.base=runtime-node wharf.node-version=$node_version wharf.base-recipe=$BASE_IMAGE_RECIPE" \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /work' \
  - "$image" >/dev/null
echo "built $image from $node_bin ($node_version)"
