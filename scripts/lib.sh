# Shared by the entry-point scripts: say what fails, install what is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES="$ROOT/target/images"
TARGET=x86_64-unknown-none

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_cargo() {
  command -v rustup >/dev/null 2>&1 || command -v cargo >/dev/null 2>&1 \
    || die "neither rustup nor cargo is installed: install Rust with rustup (https://rustup.rs), then run this again"
  command -v rustup >/dev/null 2>&1 || { need_target_without_rustup; return; }
  # The toolchain rust-toolchain.toml pins, and what it lists. Installed explicitly, whatever
  # RUSTUP_AUTO_INSTALL says: with RUSTUP_AUTO_INSTALL=0 (as on CI's machines) rustup installs
  # nothing by itself, and the first bare-metal build fails with "can't find crate for core".
  local toolchain components targets installed=()
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
  components=$(sed -n 's/^components *= *\[\(.*\)\]/\1/p' "$ROOT/rust-toolchain.toml" | tr -d '"' | tr ',' ' ')
  targets=$(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' "$ROOT/rust-toolchain.toml" | tr -d '"' | tr ',' ' ')
  [ -n "$toolchain" ] || die "rust-toolchain.toml names no channel"
  if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal >/dev/null 2>&1 \
      || die "could not install the Rust toolchain $toolchain with rustup (no network?): run 'rustup toolchain install $toolchain' by hand"
    installed+=("toolchain $toolchain")
  fi
  local have
  have=$(rustup +"$toolchain" target list --installed 2>/dev/null)
  for t in $targets; do
    grep -qx "$t" <<<"$have" && continue
    rustup +"$toolchain" target add "$t" >/dev/null 2>&1 \
      || die "could not add the Rust target $t with rustup (no network?): run 'rustup +$toolchain target add $t' by hand"
    installed+=("target $t")
  done
  have=$(rustup +"$toolchain" component list --installed 2>/dev/null)
  for c in $components; do
    grep -q "^$c" <<<"$have" && continue
    rustup +"$toolchain" component add "$c" >/dev/null 2>&1 \
      || die "could not add the Rust component $c with rustup (no network?): run 'rustup +$toolchain component add $c' by hand"
    installed+=("component $c")
  done
  if [ ${#installed[@]} -gt 0 ]; then
    say "installed with rustup: $(IFS=,; echo "${installed[*]}" | sed 's/,/, /g')"
  fi
}

# Without rustup (a distribution's Rust), nothing can be installed: check and say so.
need_target_without_rustup() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null)
  [ -d "$sysroot/lib/rustlib/$TARGET" ] \
    || die "the $TARGET target is missing and rustup is not installed to add it: install Rust with rustup (https://rustup.rs)"
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

# The block tests make ext4 images and read them back on the host (mkfs.ext4, debugfs).
need_e2fsprogs() {
  PATH="$PATH:/usr/sbin:/sbin"
  command -v mkfs.ext4 >/dev/null 2>&1 && command -v debugfs >/dev/null 2>&1 && return 0
  say "mkfs.ext4/debugfs are missing: installing e2fsprogs with apt-get"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || die "mkfs.ext4 is missing and apt-get is not available: install e2fsprogs by hand"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq e2fsprogs >/dev/null; }; then
    die "could not install e2fsprogs with apt-get (no network, or no root?): install it by hand"
  fi
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

# Writes a newc cpio archive (what dom0 reads as its ramdisk: dom0/src/toolstack/archive.rs)
# to $1 from "name=path" pairs: each file at `path` is stored as `name`.
write_archive() {
  local out=$1 tmp="$1.tmp.$$"; shift
  : >"$tmp"
  local ino=0 entry name path size mode namesize
  for entry in "$@" "TRAILER!!!="; do
    name=${entry%%=*} path=${entry#*=}
    ino=$((ino + 1)) size=0 mode=0
    if [ -n "$path" ]; then
      [ -f "$path" ] || die "no file $path for the guest archive"
      size=$(stat -c %s "$path") mode=$((0100644))
    fi
    namesize=$((${#name} + 1))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
      "$ino" "$mode" 0 0 1 0 "$size" 0 0 0 0 "$namesize" 0 >>"$tmp"
    printf '%s\0' "$name" >>"$tmp"
    head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero >>"$tmp"
    [ -z "$path" ] || cat "$path" >>"$tmp"
    head -c $(((4 - size % 4) % 4)) /dev/zero >>"$tmp"
  done
  mv -f "$tmp" "$out"
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
