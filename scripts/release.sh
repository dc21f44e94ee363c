#!/usr/bin/env bash
# Release build of the plugin for aws-for-fluent-bit 2.x (Amazon Linux 2, glibc 2.26) and
# 3.x (Amazon Linux 2023, glibc 2.34).
#
#   scripts/release.sh [x86_64|aarch64|all]     build dist/datadog_logs-linux-<arch>.so (+ .sha256)
#   scripts/release.sh check FILE.so [ARCH]      only run the checks on an existing library
#   scripts/release.sh test ARCH                 build the library's own tests, the property tests
#                                                and the fuzz corpus replay for ARCH and run them
#                                                (another architecture under qemu-user)
#
# A native build on a current distribution needs GLIBC_2.3x and does not load on Amazon Linux 2,
# so the library is linked by cargo-zigbuild against glibc 2.17 (Rust's own floor). The script
# installs cargo-zigbuild and ziglang from PyPI into the target directory (pip --target: no venv,
# no root site-packages, nothing outside the repo's target dir) and adds the Rust target with
# rustup when it is missing. The default architecture is the machine's own.
#
# Each built library must pass, or the script fails (for that architecture only with `all`):
#   - the highest GLIBC_ version it needs (readelf -V / --dyn-syms, and objdump -T where objdump
#     reads the file) is at most MAX_GLIBC (2.26);
#   - FLBPluginRegister, FLBPluginInit, FLBPluginFlushCtx and FLBPluginExitCtx are defined in the
#     dynamic symbol table;
#   - the dynamic section has FLAGS_1 NODELETE (build.rs links with -z nodelete);
#   - no test hook is compiled in: the library does not contain FLUENT_BIT_DATADOG_FAULT, the
#     variable of the `test-hooks` feature (src/fault.rs), which only `cargo test` turns on;
#   - the ELF machine matches the architecture, and on a machine of that architecture the
#     library dlopen()s with every symbol resolved (RTLD_NOW).
#
# Environment: MAX_GLIBC (2.26), GLIBC_FLOOR (2.17), CARGO_ZIGBUILD_VERSION, ZIGLANG_VERSION,
# PYTHON (python3), CARGO_TARGET_DIR (target), DIST_DIR (dist).
set -euo pipefail

MAX_GLIBC="${MAX_GLIBC:-2.26}"
GLIBC_FLOOR="${GLIBC_FLOOR:-2.17}"
CARGO_ZIGBUILD_VERSION="${CARGO_ZIGBUILD_VERSION:-0.24.1}"
ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
PYTHON="${PYTHON:-python3}"
REQUIRED_SYMBOLS=(FLBPluginRegister FLBPluginInit FLBPluginFlushCtx FLBPluginExitCtx)
# The environment variable of the test hooks (src/fault.rs): never in a shipped library.
TEST_HOOK_NAME="FLUENT_BIT_DATADOG_FAULT"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
DIST_DIR="${DIST_DIR:-dist}"
LIB_NAME="libfluent_bit_datadog.so"

say() { printf '%s\n' "release: $*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

host_arch() {
    case "$(uname -m)" in
        x86_64 | amd64) echo x86_64 ;;
        aarch64 | arm64) echo aarch64 ;;
        *) uname -m ;;
    esac
}

triple_of() { echo "$1-unknown-linux-gnu"; }

need_tool() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed ($2)"
}

# ------------------------------------------------------------------------------------ tools

TOOLS_DIR=""
ensure_zigbuild() {
    [ -n "$TOOLS_DIR" ] && return 0
    local dir="$TARGET_DIR/release-tools/cargo-zigbuild-$CARGO_ZIGBUILD_VERSION-ziglang-$ZIGLANG_VERSION"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ ! -x "$dir/bin/cargo-zigbuild" ] || [ ! -f "$dir/.complete" ]; then
        need_tool "$PYTHON" "needed to install cargo-zigbuild from PyPI"
        "$PYTHON" -m pip --version >/dev/null 2>&1 ||
            die "'$PYTHON -m pip' is not available (on Debian: apt-get install python3-pip)"
        say "installing cargo-zigbuild==$CARGO_ZIGBUILD_VERSION and ziglang==$ZIGLANG_VERSION from PyPI into $dir"
        rm -rf "$dir" && mkdir -p "$dir"
        # --target installs outside any environment, so PEP 668 (Debian 12) does not refuse it.
        PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
            --target "$dir" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION" ||
            die "pip could not install cargo-zigbuild/ziglang"
        [ -x "$dir/bin/cargo-zigbuild" ] || die "pip installed no cargo-zigbuild executable in $dir/bin"
        # cargo-zigbuild looks for `python3 -m ziglang` and for `zig` on PATH; provide both.
        printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" -m ziglang "$@"\n' \
            "$dir" "$(command -v "$PYTHON")" >"$dir/bin/zig"
        chmod +x "$dir/bin/zig"
        touch "$dir/.complete"
    fi
    export PATH="$dir/bin:$PATH"
    export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
    "$dir/bin/zig" version >/dev/null 2>&1 || die "zig from the ziglang package does not run"
    TOOLS_DIR="$dir"
    say "using cargo-zigbuild $(cargo-zigbuild --version 2>/dev/null | awk '{print $NF}'), zig $(zig version)"
}

# Makes sure the Rust standard library for the target is installed; returns 1 with a clear
# message when it cannot be.
ensure_rust_target() {
    local triple="$1" libdir
    if command -v rustup >/dev/null 2>&1; then
        if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
            say "adding the Rust target $triple with rustup"
            if ! rustup target add "$triple" >&2; then
                say "error: cannot install the Rust standard library for $triple ('rustup target add $triple' failed): the $triple build is impossible on this machine"
                return 1
            fi
        fi
    fi
    libdir="$(rustc --print target-libdir --target "$triple" 2>/dev/null || true)"
    if [ -z "$libdir" ] || ! ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
        say "error: the Rust standard library for $triple is not installed (no rustup, or 'rustup target add $triple' did not provide it): the $triple build is impossible on this machine"
        return 1
    fi
}

# ----------------------------------------------------------------------------------- checks

# Highest of the version strings on stdin (sort -V).
max_version() { sort -Vu | tail -n 1; }

version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$2" ]; }

elf_machine_for() {
    case "$1" in
        x86_64) echo "Advanced Micro Devices X86-64" ;;
        aarch64) echo "AArch64" ;;
        *) echo "?" ;;
    esac
}

# check_library FILE ARCH: prints the figures, returns 1 on any failed check.
check_library() {
    local so="$1" arch="$2" failed=0 machine want glibc_readelf glibc_objdump="" max sym missing=()
    need_tool readelf "binutils"
    [ -f "$so" ] || { say "error: $so does not exist"; return 1; }
    say "checking $so ($arch)"

    machine="$(readelf -h -W "$so" | sed -n 's/^ *Machine: *//p')"
    want="$(elf_machine_for "$arch")"
    if [ "$machine" = "$want" ]; then
        say "  ok   ELF machine: $machine"
    else
        say "  FAIL ELF machine is '$machine', expected '$want'"
        failed=1
    fi

    # Every GLIBC_ version the library refers to: the version needs (.gnu.version_r, what the
    # loader demands, weak references included) and the versioned dynamic symbols.
    glibc_readelf="$( { readelf -V -W "$so"; readelf --dyn-syms -W "$so"; } |
        grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//; s/\.$//' | sort -Vu || true)"
    if command -v objdump >/dev/null 2>&1 && objdump -T "$so" >/dev/null 2>&1; then
        glibc_objdump="$(objdump -T "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//; s/\.$//' | sort -Vu || true)"
    else
        say "  note objdump -T cannot read this file here (needs binutils for $arch); readelf is used alone"
    fi
    max="$(printf '%s\n%s\n' "$glibc_readelf" "$glibc_objdump" | grep . | max_version || true)"
    if [ -z "$max" ]; then
        say "  FAIL no GLIBC_ version references found (not a glibc-linked library?)"
        failed=1
    elif version_le "$max" "$MAX_GLIBC"; then
        say "  ok   max GLIBC version needed: GLIBC_$max (limit GLIBC_$MAX_GLIBC)"
    else
        say "  FAIL max GLIBC version needed: GLIBC_$max > GLIBC_$MAX_GLIBC; symbols needing more than $MAX_GLIBC:"
        { readelf --dyn-syms -W "$so"; [ -n "$glibc_objdump" ] && objdump -T "$so"; } 2>/dev/null |
            grep -o '[A-Za-z0-9_.]*@\{1,2\}GLIBC_[0-9.]*' | sort -u |
            while IFS= read -r s; do
                v="${s##*GLIBC_}"
                version_le "$v" "$MAX_GLIBC" || say "         $s"
            done
        failed=1
    fi
    say "  info NEEDED: $(readelf -d -W "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

    # Defined (exported) functions in .dynsym: Ndx is not UND.
    local exported
    exported="$(readelf --dyn-syms -W "$so" |
        awk '$4 == "FUNC" && ($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort -u)"
    for sym in "${REQUIRED_SYMBOLS[@]}"; do
        grep -qx "$sym" <<<"$exported" || missing+=("$sym")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "  ok   exported: $(grep '^FLBPlugin' <<<"$exported" | tr '\n' ' ')"
    else
        say "  FAIL not exported from the dynamic symbol table: ${missing[*]}"
        failed=1
    fi

    if readelf -d -W "$so" | grep 'FLAGS_1' | grep -qw NODELETE; then
        say "  ok   FLAGS_1 NODELETE: $(readelf -d -W "$so" | sed -n 's/.*(FLAGS_1) *//p')"
    else
        say "  FAIL the library is not marked NODELETE (readelf -d shows no FLAGS_1 NODELETE; link with -Wl,-z,nodelete)"
        failed=1
    fi

    if grep -q -a "$TEST_HOOK_NAME" "$so"; then
        say "  FAIL the library contains the test hook $TEST_HOOK_NAME (built with the test-hooks feature, as \`cargo test\` does); build it with cargo build --release"
        failed=1
    else
        say "  ok   no test hook ($TEST_HOOK_NAME absent)"
    fi

    if [ "$arch" = "$(host_arch)" ] && command -v "$PYTHON" >/dev/null 2>&1; then
        if "$PYTHON" -c 'import ctypes, os, sys; ctypes.CDLL(os.path.abspath(sys.argv[1]), mode=os.RTLD_NOW)' "$so" 2>/dev/null; then
            say "  ok   dlopen(RTLD_NOW) on this machine (glibc $(ldd --version 2>/dev/null | sed -n '1s/.* //p'))"
        else
            say "  FAIL dlopen(RTLD_NOW) failed on this machine:"
            "$PYTHON" -c 'import ctypes, os, sys; ctypes.CDLL(os.path.abspath(sys.argv[1]), mode=os.RTLD_NOW)' "$so" 2>&1 | tail -n 1 >&2 || true
            failed=1
        fi
    fi

    say "  info size: $(wc -c <"$so") bytes"
    return "$failed"
}

# ------------------------------------------------------------------------------------ build

build_arch() {
    local arch="$1" triple start secs out dest
    triple="$(triple_of "$arch")"
    say "== $arch ($triple, glibc $GLIBC_FLOOR) =="
    ensure_rust_target "$triple" || return 1
    ensure_zigbuild
    start=$SECONDS
    # The shipped library carries symbols but no debug info (the release profile keeps line
    # tables for profiling; they would make the .so about five times larger).
    if ! CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        cargo zigbuild --release --locked -p fluent-bit-datadog --lib --target "$triple.$GLIBC_FLOOR" >&2; then
        say "error: cargo zigbuild failed for $triple"
        return 1
    fi
    secs=$((SECONDS - start))
    out="$TARGET_DIR/$triple/release/$LIB_NAME"
    [ -f "$out" ] || { say "error: the build produced no $out"; return 1; }
    mkdir -p "$DIST_DIR" || return 1
    dest="$DIST_DIR/datadog_logs-linux-$arch.so"
    rm -f "$dest" "$dest.sha256" || return 1
    if ! check_library "$out" "$arch"; then
        say "error: $arch: the library failed the checks above; nothing written to $DIST_DIR"
        return 1
    fi
    cp "$out" "$dest" || return 1
    (cd "$DIST_DIR" && sha256sum "$(basename "$dest")" >"$(basename "$dest").sha256") || return 1
    say "$arch: wrote $dest ($(wc -c <"$dest") bytes, sha256 $(cut -c1-16 "$dest.sha256")...) in ${secs}s of cargo zigbuild"
}

# test_arch ARCH: the tests that need neither a host process nor the network (decode, map,
# JSON escaping, batching; the property tests; the fuzz corpus), built for ARCH and run, under
# qemu-user when ARCH is not the machine's (Debian: qemu-user and libc6-arm64-cross).
test_arch() {
    local arch="$1" triple sysroot runner=() exes exe filters failed=0
    triple="$(triple_of "$arch")"
    say "== tests for $arch ($triple) =="
    ensure_rust_target "$triple" || return 1
    ensure_zigbuild
    if [ "$arch" != "$(host_arch)" ]; then
        need_tool "qemu-$arch" "apt-get install qemu-user"
        sysroot="/usr/$arch-linux-gnu"
        [ -f "$sysroot/lib/libc.so.6" ] ||
            die "no $arch C library in $sysroot (apt-get install libc6-$([ "$arch" = aarch64 ] && echo arm64 || echo "$arch")-cross)"
        runner=(env "QEMU_LD_PREFIX=$sysroot" "qemu-$arch")
    fi
    exes="$(cargo-zigbuild test --no-run --release --locked -p fluent-bit-datadog --target "$triple" \
        --lib --test it --message-format=json |
        "$PYTHON" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')" || { say "error: cargo zigbuild of the tests failed for $triple"; return 1; }
    [ -n "$exes" ] || { say "error: the build produced no test executable"; return 1; }
    for exe in $exes; do
        say "running $(basename "$exe") for $arch"
        # Of the integration tests (one binary, tests/it), those that need neither a host
        # process nor the network: the property tests and the fuzz corpus.
        filters=()
        case "$(basename "$exe")" in it-*) filters=(properties:: fuzz_corpus::) ;; esac
        "${runner[@]}" "$exe" --quiet "${filters[@]}" >&2 || failed=1
    done
    return "$failed"
}

main() {
    local arches=() arch failed=()
    case "${1:-}" in
        -h | --help) usage ;;
        check)
            [ $# -ge 2 ] || usage
            check_library "$2" "${3:-$(host_arch)}" || die "$2 failed the checks"
            say "all checks passed"
            return 0
            ;;
        test)
            [ $# -eq 2 ] || usage
            case "$2" in
                x86_64 | amd64) arch=x86_64 ;;
                aarch64 | arm64) arch=aarch64 ;;
                *) usage ;;
            esac
            need_tool cargo "install Rust (rustup) first"
            test_arch "$arch" || die "tests failed for $arch"
            say "all tests passed for $arch"
            return 0
            ;;
        "") arches=("$(host_arch)") ;;
        x86_64 | amd64) arches=(x86_64) ;;
        aarch64 | arm64) arches=(aarch64) ;;
        all) arches=(x86_64 aarch64) ;;
        *) usage ;;
    esac
    [ $# -le 1 ] || usage
    need_tool cargo "install Rust (rustup) first"
    need_tool readelf "apt-get install binutils"
    need_tool sha256sum "coreutils"
    for arch in "${arches[@]}"; do
        if ! build_arch "$arch"; then
            failed+=("$arch")
        fi
    done
    if [ "${#failed[@]}" -ne 0 ]; then
        die "failed for: ${failed[*]}"
    fi
    say "done: ${arches[*]} passed every check (GLIBC <= $MAX_GLIBC, FLBPlugin* exported, NODELETE, no test hook)"
}

main "$@"
