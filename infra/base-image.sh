#!/usr/bin/env bash
# Builds the base runtime image from this host's own Node binary and the libraries it links,
# because no registry can be reached to pull one. Usage: infra/base-image.sh IMAGE_TAG
set -euo pipefail
image=${1:?usage: base-image.sh IMAGE_TAG}
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" --version)

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{usr/local/bin,etc,tmp,work,app}
cp "$node_bin" "$rootfs/usr/local/bin/node"
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
# Functions run as uid 10001 (SANDBOX_USER in packages/shared); a passwd entry keeps os.userInfo() working.
printf 'root:x:0:0:root:/root:/sbin/nologin\nwharf:x:10001:10001:wharf function:/work:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nwharf:x:10001:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV NODE_ENV=production' \
  --change "LABEL wharf.base=runtime-node wharf.node-version=$node_version" \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /work' \
  - "$image" >/dev/null
echo "built $image from $node_bin ($node_version)"
