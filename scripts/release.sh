#!/usr/bin/env bash
# Release archives for kubectl-infermesh.
#
#   scripts/release.sh [--out DIR] VERSION
#       Static x86_64 and aarch64 musl builds (cargo-zigbuild; zig is the C cross compiler that
#       ring needs), each packed as kubectl-infermesh_vVERSION_linux_{amd64,arm64}.tar.gz with
#       its .sha256, the aarch64 binary run under qemu-aarch64-static, and DIR/krew-manifest.yaml
#       rendered with the archives' sha256. VERSION is Cargo.toml's, with or without the v.
#       DIR defaults to dist/.
#   scripts/release.sh --pack BINARY DIR [--version VERSION] [--platform OS_ARCH]
#       Packs an already-built binary (no build): DIR/kubectl-infermesh_vVERSION_OS_ARCH.tar.gz and
#       its .sha256; prints the archive's path. OS_ARCH defaults to this machine's (linux_amd64).
#   scripts/release.sh --render DIR [--version VERSION]
#       Writes DIR/krew-manifest.yaml from krew-manifest.yaml, with the sha256 of every archive in
#       DIR; platforms without an archive there keep their @SHA256_…@ placeholder.
#
# Needs: rustup (targets are added), python3 (PyPI cargo-zigbuild and ziglang are installed when
# missing), qemu-user-static for the arm64 check, tar, gzip, sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

crate_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1
}

# VERSION as given (0.1.0 or v0.1.0; empty for Cargo.toml's) -> $VERSION=0.1.0, checked against
# Cargo.toml. (It sets a variable: `die` in a command substitution would end only the subshell.)
set_version() {
    local crate
    crate="$(crate_version)"
    VERSION="${1#v}"
    VERSION="${VERSION:-$crate}"
    [ "$VERSION" = "$crate" ] || die "VERSION $VERSION is not Cargo.toml's $crate: bump Cargo.toml first"
}

host_platform() {
    local os arch
    case "$(uname -s)" in
        Linux) os=linux ;;
        Darwin) os=darwin ;;
        *) die "unsupported OS $(uname -s)" ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) die "unsupported CPU $(uname -m)" ;;
    esac
    printf '%s_%s' "$os" "$arch"
}

sha256_of() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# pack BINARY DIR VERSION PLATFORM: the archive with the binary, the completion executable,
# LICENSE and README.md at its root, reproducible (sorted, owner 0, fixed mtime, gzip -n).
# gzip's default level: -9 took 2.5 times as long for 0.8% less on this binary.
pack() {
    local binary="$1" dir="$2" version="$3" platform="$4"
    [ -x "$binary" ] || die "$binary is not an executable file"
    mkdir -p "$dir"
    local name="kubectl-infermesh_v${version}_${platform}"
    local staging
    staging="$(mktemp -d)"
    cp "$binary" "$staging/kubectl-infermesh"
    cp scripts/kubectl_complete-infermesh LICENSE README.md "$staging/"
    chmod 0755 "$staging/kubectl-infermesh" "$staging/kubectl_complete-infermesh"
    chmod 0644 "$staging/LICENSE" "$staging/README.md"
    local epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
    local archive="$dir/$name.tar.gz"
    local tar_flags=(--owner=0 --group=0 --numeric-owner --mtime="@$epoch" --sort=name)
    if ! tar --version 2>/dev/null | grep -q GNU; then
        tar_flags=(--uid 0 --gid 0) # bsdtar (macOS)
    fi
    (cd "$staging" && tar "${tar_flags[@]}" -cf - \
        kubectl-infermesh kubectl_complete-infermesh LICENSE README.md) | gzip -n >"$archive"
    rm -rf "$staging"
    printf '%s  %s\n' "$(sha256_of "$archive")" "$name.tar.gz" >"$archive.sha256"
    printf '%s\n' "$archive"
}

# render DIR VERSION: DIR/krew-manifest.yaml from the template, every placeholder whose archive is
# in DIR filled with its sha256.
render() {
    local dir="$1" version="$2"
    local manifest="$dir/krew-manifest.yaml"
    {
        echo "# Rendered by scripts/release.sh from krew-manifest.yaml for v$version."
        sed -e '/^#/d' -e "s/@VERSION@/$version/g" krew-manifest.yaml
    } >"$manifest.tmp"
    local platform archive key sha
    for platform in linux_amd64 linux_arm64 darwin_amd64 darwin_arm64; do
        archive="$dir/kubectl-infermesh_v${version}_${platform}.tar.gz"
        [ -f "$archive" ] || continue
        key="$(printf 'SHA256_%s' "$platform" | tr '[:lower:]' '[:upper:]')"
        sha="$(sha256_of "$archive")"
        sed -i.bak "s/@${key}@/${sha}/" "$manifest.tmp" && rm -f "$manifest.tmp.bak"
    done
    mv "$manifest.tmp" "$manifest"
    say "krew manifest: $manifest"
}

# Tools for the musl builds, installed when missing.
ensure_build_tools() {
    command -v rustup >/dev/null || die "rustup is needed to add the musl targets (https://rustup.rs)"
    rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
    PATH="$PATH:$(python3 -m site --user-base)/bin"
    if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
        say "installing cargo-zigbuild and ziglang from PyPI"
        python3 -m pip install --quiet cargo-zigbuild ziglang 2>/dev/null \
            || python3 -m pip install --quiet --user --break-system-packages cargo-zigbuild ziglang
    fi
    command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is not on PATH after installing it"
    command -v qemu-aarch64-static >/dev/null \
        || die "qemu-aarch64-static runs the arm64 binary to check it: apt-get install qemu-user-static"
}

# check_binary BINARY TARGET VERSION: it is static and prints VERSION.
check_binary() {
    local binary="$1" target="$2" version="$3" printed
    if command -v file >/dev/null; then
        file -L "$binary" | grep -Eq 'statically linked|static-pie linked' \
            || die "$binary is not statically linked: $(file -L "$binary")"
    fi
    case "$target" in
        aarch64-*) printed="$(qemu-aarch64-static "$binary" --version)" ;;
        *) printed="$("$binary" --version)" ;;
    esac
    case "$printed" in
        *" $version (commit "*) say "$target: $printed" ;;
        *) die "$binary --version printed '$printed', not version $version" ;;
    esac
}

build_all() {
    local dir="$1" version="$2"
    ensure_build_tools
    mkdir -p "$dir"
    local target platform started took binary
    for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        case "$target" in
            x86_64-*) platform=linux_amd64 ;;
            aarch64-*) platform=linux_arm64 ;;
        esac
        say "building $target"
        started="$(date +%s)"
        cargo zigbuild --release --locked --target "$target" --bin kubectl-infermesh
        took=$(($(date +%s) - started))
        binary="target/$target/release/kubectl-infermesh"
        check_binary "$binary" "$target" "$version"
        pack "$binary" "$dir" "$version" "$platform" >/dev/null
        say "$target: built in ${took}s, binary $(wc -c <"$binary") bytes, archive $(wc -c <"$dir/kubectl-infermesh_v${version}_${platform}.tar.gz") bytes"
    done
    render "$dir" "$version"
}

main() {
    local out="dist" version="" mode="build" binary="" platform=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --pack)
                [ $# -ge 3 ] || die "--pack BINARY DIR: give the binary and the output folder"
                mode=pack binary="$2" out="$3"
                shift 3
                ;;
            --render)
                [ $# -ge 2 ] || die "--render DIR: give the folder with the archives"
                mode=render out="$2"
                shift 2
                ;;
            --out)
                [ $# -ge 2 ] || die "--out DIR: give the output folder"
                out="$2"
                shift 2
                ;;
            --version)
                [ $# -ge 2 ] || die "--version VERSION: give the version"
                version="$2"
                shift 2
                ;;
            --platform)
                [ $# -ge 2 ] || die "--platform OS_ARCH: e.g. linux_amd64, darwin_arm64"
                platform="$2"
                shift 2
                ;;
            -h | --help)
                sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
                exit 0
                ;;
            -*) die "unknown option $1 (see --help)" ;;
            *)
                version="$1"
                shift
                ;;
        esac
    done
    case "$mode" in
        pack)
            set_version "$version"
            platform="${platform:-$(host_platform)}"
            case "$platform" in
                linux_amd64 | linux_arm64 | darwin_amd64 | darwin_arm64) ;;
                *) die "--platform $platform: one of linux_amd64, linux_arm64, darwin_amd64, darwin_arm64" ;;
            esac
            pack "$binary" "$out" "$VERSION" "$platform"
            ;;
        render)
            set_version "$version"
            render "$out" "$VERSION"
            ;;
        build)
            [ -n "$version" ] || die "usage: scripts/release.sh [--out DIR] VERSION (see --help)"
            set_version "$version"
            build_all "$out" "$VERSION"
            ;;
    esac
}

main "$@"
