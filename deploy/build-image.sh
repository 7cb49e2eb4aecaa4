#!/usr/bin/env bash
# Build the kiosk SD image: Raspberry Pi OS Lite (Bookworm, 64-bit) made by
# pi-gen, plus the kiosk stage (deploy/pi-gen/stage-kiosk), plus the data
# partition. Run as root on a Debian or Ubuntu machine with internet access
# and ~25 GB free; an x86 PC works (pi-gen uses qemu-user-static).
#
#   sudo deploy/build-image.sh [OUT_DIR]
#
# Settings (environment):
#   PIGEN_DIR          where pi-gen is cloned (default: build/pi-gen)
#   PIGEN_REF          pi-gen branch or tag (default: arm64, the 64-bit branch;
#                      pin a bookworm-arm64 release tag for repeatable builds)
#   KIOSK_HOSTNAME     default: kiosk
#   KIOSK_TIMEZONE     default: Etc/UTC
#   KIOSK_TECH_PASSWORD  password of the "technician" login (default: random,
#                      written to OUT_DIR/technician-password.txt)
#   KIOSK_SSH_PUBKEY   a public key file: SSH (when turned on) takes only it
#   KIOSK_DATA_MIB     starting size of the data partition (default: 256)
#
# Result: OUT_DIR/waste-kiosk.img.xz (default OUT_DIR: build/image) and its
# .sha256. Flash it with Raspberry Pi Imager ("Use custom") or dd.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=$(realpath -m "${1:-$REPO/build/image}")
PIGEN_DIR=$(realpath -m "${PIGEN_DIR:-$REPO/build/pi-gen}")
PIGEN_REF=${PIGEN_REF:-arm64}
PIGEN_URL=https://github.com/RPi-Distro/pi-gen.git
STAGE="$REPO/deploy/pi-gen/stage-kiosk"

log() { printf 'build-image: %s\n' "$*"; }
die() {
	printf 'build-image: ERROR: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "pi-gen needs root: sudo $0"
case "$PIGEN_DIR" in *" "*) die "PIGEN_DIR must not contain spaces (debootstrap fails): $PIGEN_DIR" ;; esac
for tool in git xz sha256sum losetup mount; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[ -f "$REPO/models/kiosk-lite0-int8.onnx" ] ||
	log "WARNING: models/kiosk-lite0-int8.onnx is missing: the image will boot to out-of-service"

if [ ! -d "$PIGEN_DIR/.git" ]; then
	log "cloning pi-gen ($PIGEN_REF) into $PIGEN_DIR"
	git clone --branch "$PIGEN_REF" "$PIGEN_URL" "$PIGEN_DIR"
else
	log "using pi-gen in $PIGEN_DIR ($(git -C "$PIGEN_DIR" describe --always --tags))"
fi

mkdir -p "$OUT_DIR"
password=${KIOSK_TECH_PASSWORD:-}
case "$password" in *"'"* | *'"'* | *'$'* | *"\\"*) die "KIOSK_TECH_PASSWORD must not contain quotes, \$ or backslashes" ;; esac
if [ -z "$password" ]; then
	password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	(
		umask 077
		printf '%s\n' "$password" >"$OUT_DIR/technician-password.txt"
	)
	log "technician password written to $OUT_DIR/technician-password.txt"
fi

config="$OUT_DIR/pi-gen-config"
(
	umask 077
	cat >"$config" <<EOF
IMG_NAME=waste-kiosk
RELEASE=bookworm
TARGET_HOSTNAME=${KIOSK_HOSTNAME:-kiosk}
TIMEZONE_DEFAULT=${KIOSK_TIMEZONE:-Etc/UTC}
LOCALE_DEFAULT=en_GB.UTF-8
KEYBOARD_KEYMAP=gb
KEYBOARD_LAYOUT="English (UK)"
FIRST_USER_NAME=technician
FIRST_USER_PASS='${password}'
DISABLE_FIRST_BOOT_USER_RENAME=1
ENABLE_SSH=0
DEPLOY_COMPRESSION=none
STAGE_LIST="stage0 stage1 stage2 $STAGE"
EOF
	if [ -n "${KIOSK_SSH_PUBKEY:-}" ]; then
		[ -f "$KIOSK_SSH_PUBKEY" ] || die "KIOSK_SSH_PUBKEY: no such file: $KIOSK_SSH_PUBKEY"
		printf 'PUBKEY_SSH_FIRST_USER="%s"\nPUBKEY_ONLY_SSH=1\n' "$(cat "$KIOSK_SSH_PUBKEY")" >>"$config"
	fi
)

# Only the kiosk stage makes an image (not the plain Lite one of stage2).
touch "$PIGEN_DIR/stage2/SKIP_IMAGES"
log "running pi-gen (this takes an hour or more)"
(cd "$PIGEN_DIR" && ./build.sh -c "$config")

img=$(find "$PIGEN_DIR/deploy" -maxdepth 2 -name '*waste-kiosk*-kiosk*.img' -newer "$config" | sort | tail -n 1)
[ -n "$img" ] || die "pi-gen made no *-kiosk.img in $PIGEN_DIR/deploy"
log "built $img"

"$REPO/deploy/add-data-partition.sh" "$img" "${KIOSK_DATA_MIB:-256}"

# The root must not grow over the data partition: check the boot command line.
loop=$(losetup --show -f -P "$img")
mnt=$(mktemp -d)
trap 'umount "$mnt" 2>/dev/null || true; losetup -d "$loop" 2>/dev/null || true; rmdir "$mnt"' EXIT
mount -o ro "${loop}p1" "$mnt"
cmdline=$(cat "$mnt/cmdline.txt")
[ -f "$mnt/kiosk.yaml" ] || die "no kiosk.yaml on the image's boot partition"
umount "$mnt"
if grep -qE '(^| )resize( |$)|firstboot' <<<"$cmdline"; then
	die "the image's cmdline.txt still grows the root partition: $cmdline"
fi

log "compressing"
xz -T0 -6 -c "$img" >"$OUT_DIR/waste-kiosk.img.xz"
(cd "$OUT_DIR" && sha256sum waste-kiosk.img.xz >waste-kiosk.img.xz.sha256)
log "done: $OUT_DIR/waste-kiosk.img.xz"
