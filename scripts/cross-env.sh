# Sourced by the aarch64 scripts: the cross compiler, pkg-config and qemu settings for
# aarch64-unknown-linux-gnu against the Debian arm64 sysroot from scripts/arm64-sysroot.sh.
# shellcheck shell=bash
CROSS_TARGET=aarch64-unknown-linux-gnu
ARM64_SYSROOT=${ARM64_SYSROOT:-$PWD/target/arm64-sysroot}
ARM64_LITERT=${ARM64_LITERT:-$PWD/third_party/litert-aarch64}
arm64_libs="$ARM64_SYSROOT/usr/lib/aarch64-linux-gnu"
export ARM64_SYSROOT ARM64_LITERT CROSS_TARGET
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$ARM64_SYSROOT -C link-arg=-Wl,-rpath-link,$arm64_libs -C link-arg=-Wl,-rpath-link,$ARM64_SYSROOT/lib/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu=$ARM64_SYSROOT
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=$arm64_libs/pkgconfig:$ARM64_SYSROOT/usr/share/pkgconfig
export PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=
# qemu-user runs the test binaries; QEMU_LD_PREFIX is qemu's -L, and it reaches the
# binaries the tests start through STYLIZE_TEST_WRAPPER (no binfmt_misc needed).
export QEMU_LD_PREFIX=$ARM64_SYSROOT
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
