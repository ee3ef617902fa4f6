# bench/lib.sh: what the benchmark scripts share (sourced, not run).
# The caller sets BENCH_NAME (for messages) and runs from the repository root.

log() { printf '[%s] %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 2; }

# ensure_commands CMD=PACKAGE...: installs the Debian packages of missing commands.
ensure_commands() {
  local -a missing=()
  local pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing missing packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]} and not root (no sudo)"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# ---- npm data: bench/data/<tarball>, extracted under bench/data/extract/ ----
DATA=bench/data
EXTRACT=$DATA/extract

# npm names "@scope/name@1.2.3" -> "scope-name-1.2.3.tgz"
tarball_name() {
  local name=$1 version=$2
  name=${name#@}
  printf '%s-%s.tgz' "${name//\//-}" "$version"
}

# fetch NAME VERSION: bench/data/<tarball>, downloaded with `npm pack` unless cached.
fetch() {
  local name=$1 version=$2 tgz
  mkdir -p "$DATA"
  tgz=$DATA/$(tarball_name "$name" "$version")
  [[ -s "$tgz" ]] && return 0
  log "npm pack $name@$version"
  local tmp
  tmp=$(mktemp -d "$DATA/.pack.XXXXXX")
  if ! (cd "$tmp" && npm pack "$name@$version" --ignore-scripts --silent >/dev/null); then
    rm -rf "$tmp"
    die "npm pack $name@$version failed"
  fi
  [[ -s "$tmp/$(basename "$tgz")" ]] || { rm -rf "$tmp"; die "npm pack did not produce $(basename "$tgz")"; }
  mv "$tmp/$(basename "$tgz")" "$tgz"   # atomic: a partial download never gets the final name
  rmdir "$tmp" 2>/dev/null || rm -rf "$tmp"
}

# extract NAME VERSION MEMBER...: tar members into bench/data/extract/<tarball>/, once.
extract() {
  local name=$1 version=$2; shift 2
  local base dir
  base=$(tarball_name "$name" "$version")
  dir=$EXTRACT/${base%.tgz}
  [[ -f "$dir/.done" ]] && return 0
  rm -rf "$dir"; mkdir -p "$dir"
  tar -xzf "$DATA/$base" -C "$dir" --wildcards "$@"
  touch "$dir/.done"
}

# pkg_dir NAME VERSION: where extract() put the package.
pkg_dir() {
  local base
  base=$(tarball_name "$1" "$2")
  printf '%s/%s' "$EXTRACT" "${base%.tgz}"
}
