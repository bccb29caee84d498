# Shared settings of the cross scripts (sourced by cross/setup, cross/build, cross/test-aarch64
# and cross/smoke; not meant to be run). Everything the scripts agree on lives here: the
# toolchain, the targets, where the tools go and how each target is linked and run.

# Debian's rustc-web, linked into rustup under this name by cross/setup.
CROSS_TOOLCHAIN=debian-1.96
# Debian's packages of that toolchain and of the cross linkers and emulators, pinned: the amd64
# and arm64 halves of libstd-rust-web-dev must be the very same version as rustc-web. When
# Debian publishes a newer one (security updates replace the old version on the mirror),
# cross/setup fails and these are bumped together.
CROSS_RUST_VERSION=1.96.0+dfsg1-1~deb12u2
CROSS_PACKAGES=(
    "rustc-web=$CROSS_RUST_VERSION"
    "cargo-web=$CROSS_RUST_VERSION"
    "rust-web-src=$CROSS_RUST_VERSION"
    "libstd-rust-web-dev=$CROSS_RUST_VERSION"
    "libstd-rust-web-dev:arm64=$CROSS_RUST_VERSION"
    "gcc-aarch64-linux-gnu=4:12.2.0-3"
    "libc6-dev-arm64-cross=2.36-8cross1"
    "gcc-arm-linux-gnueabihf=4:12.2.0-3"
    "libc6-dev-armhf-cross=2.36-8cross1"
    "qemu-user-static=1:7.2+dfsg-7+deb12u18+b3"
)
# Helpers whose version does not matter (any installed one is kept).
CROSS_HELPERS=(python3-venv file)
# zig is the linker of the musl targets (it brings the musl C runtime); from PyPI.
CROSS_PIP=("ziglang==0.17.1" "cargo-zigbuild==0.24.0")

CROSS_TARGETS=(
    aarch64-unknown-linux-gnu
    armv7-unknown-linux-gnueabihf
    aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf
)

CROSS_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# The zig virtualenv and the test wrapper go here. Absolute: build scripts run elsewhere and
# find zig through PATH.
CROSS_TOOLS_DIR=$(realpath -m "${TALLYMAN_CROSS_TOOLS:-$CROSS_TARGET_DIR/cross-tools}")

cross_die() {
    echo "cross: $*" >&2
    exit 1
}

cross_is_target() {
    local t
    for t in "${CROSS_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

# The sysroot of the armhf cross C library (the dynamic loader and libc the armv7-gnueabihf
# binary runs with under qemu).
cross_armhf_sysroot() {
    local libc
    libc=$(arm-linux-gnueabihf-gcc -print-file-name=libc.so.6)
    [ -e "$libc" ] || cross_die "arm-linux-gnueabihf-gcc finds no libc.so.6: run cross/setup"
    realpath "$(dirname "$libc")/.."
}

# Exports what cargo needs to build for TARGET and to run its binaries under qemu:
# CARGO_TARGET_<T>_LINKER/_RUNNER, and for the std-from-source targets RUSTC_BOOTSTRAP and the
# -Zbuild-std flags (in CROSS_BUILD_STD) and the cargo subcommand (CROSS_CARGO_BUILD).
#
# Runners: aarch64-gnu runs with qemu-aarch64-static and NO -L/QEMU_LD_PREFIX. The arm64
# libstd package brings the multiarch libc6:arm64, which qemu then uses; pointing qemu at the
# cross sysroot as well loads two different glibc builds into one process, and every new
# thread hangs in pthread_create. armhf has only the cross sysroot, so qemu gets -L to it.
cross_target_env() {
    local target=$1 upper
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
    CROSS_BUILD_STD=()
    CROSS_CARGO_BUILD=build
    unset RUSTC_BOOTSTRAP
    case "$target" in
    aarch64-unknown-linux-gnu)
        # Debian ships the aarch64 std prebuilt (libstd-rust-web-dev:arm64): a stable build.
        export "CARGO_TARGET_${upper}_LINKER=aarch64-linux-gnu-gcc"
        export "CARGO_TARGET_${upper}_RUNNER=qemu-aarch64-static"
        ;;
    armv7-unknown-linux-gnueabihf)
        # No matching armhf std package: std is built from rust-web-src.
        export "CARGO_TARGET_${upper}_LINKER=arm-linux-gnueabihf-gcc"
        export "CARGO_TARGET_${upper}_RUNNER=qemu-arm-static -L $(cross_armhf_sysroot)"
        export RUSTC_BOOTSTRAP=1
        CROSS_BUILD_STD=(-Zbuild-std=std,panic_unwind)
        ;;
    aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf)
        # Static binaries: std from rust-web-src, linked by zig (cargo zigbuild sets the linker).
        # zig supplies the C runtime objects, so rustc must not add its own (it has none here).
        local qemu=qemu-aarch64-static
        [ "${target%%-*}" = armv7 ] && qemu=qemu-arm-static
        export "CARGO_TARGET_${upper}_RUNNER=$qemu"
        export "CARGO_TARGET_${upper}_RUSTFLAGS=-C link-self-contained=no"
        export RUSTC_BOOTSTRAP=1
        export PATH="$CROSS_TOOLS_DIR/venv/bin:$PATH"
        CROSS_BUILD_STD=(-Zbuild-std=std,panic_unwind)
        CROSS_CARGO_BUILD=zigbuild
        ;;
    *) cross_die "unknown target $target (one of: ${CROSS_TARGETS[*]})" ;;
    esac
}

# The runner of TARGET as words, to run one of its binaries by hand.
cross_runner() {
    local upper var
    upper=$(echo "$1" | tr 'a-z-' 'A-Z_')
    var="CARGO_TARGET_${upper}_RUNNER"
    echo "${!var}"
}
