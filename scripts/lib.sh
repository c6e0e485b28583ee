# Shared by the entry-point scripts: say what fails, install what is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES="$ROOT/target/images"
TARGET=x86_64-unknown-none

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install Rust with rustup (https://rustup.rs); rust-toolchain.toml then fetches the pinned toolchain and the $TARGET target"
}

need_qemu() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 && return 0
  say "qemu-system-x86_64 is missing: installing qemu-system-x86 with apt-get"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || die "qemu-system-x86_64 is missing and apt-get is not available: install QEMU (package qemu-system-x86) by hand"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-system-x86 >/dev/null; }; then
    die "could not install qemu-system-x86 with apt-get (no network, or no root?): install it by hand"
  fi
  command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86 installed but qemu-system-x86_64 is not on PATH"
}

# Builds the three images into target/images (plus .elf copies with symbols for gdb).
build_images() {
  need_cargo
  say "building xen-core, dom0 and pv-guest for $TARGET"
  (cd "$ROOT" && cargo build --release --target "$TARGET" -p xen-core -p dom0 -p pv-guest) \
    || die "the image build failed (see the compiler output above)"
  mkdir -p "$IMAGES"
  local out="$ROOT/target/$TARGET/release"
  for img in xen-core dom0 pv-guest; do
    # Each file is written aside and renamed into place: a QEMU starting meanwhile (another
    # test, another terminal) sees the old image or the new one, never a missing or half one.
    cp "$out/$img" "$IMAGES/.$img.elf.tmp"
    mv -f "$IMAGES/.$img.elf.tmp" "$IMAGES/$img.elf"
    # The boot images without debug sections (what gets loaded is the same).
    if command -v objcopy >/dev/null 2>&1; then
      objcopy --strip-debug "$out/$img" "$IMAGES/.$img.tmp"
    else
      cp "$out/$img" "$IMAGES/.$img.tmp"
    fi
    mv -f "$IMAGES/.$img.tmp" "$IMAGES/$img"
  done
  say "images in $IMAGES: $(cd "$IMAGES" && ls xen-core dom0 pv-guest | tr '\n' ' ')"
}

# The QEMU command line for booting by hand; extra modules in "$@" ("path args").
qemu_cmd() {
  local hv_args=$1 dom0_args=$2; shift 2
  local initrd="$IMAGES/dom0${dom0_args:+ $dom0_args}"
  for m in "$@"; do initrd="$initrd,$m"; done
  QEMU_ARGS=(qemu-system-x86_64 -accel "${ACCEL:-tcg}" -cpu max -m "${MEM:-512}" -display none -monitor none
    -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04
    -kernel "$IMAGES/xen-core" -append "$hv_args" -initrd "$initrd")
}

# Maps QEMU's exit status (isa-debug-exit: 2v+1) to what happened.
explain_status() {
  case $1 in
    33) echo "dom0 powered off"; return 0 ;;
    35) echo "dom0 asked for a reboot"; return 0 ;;
    37) echo "dom0 crashed"; return 1 ;;
    39) echo "the hypervisor failed (see the log above)"; return 1 ;;
    124) echo "timed out"; return 1 ;;
    *) echo "QEMU exited with status $1"; return 1 ;;
  esac
}
