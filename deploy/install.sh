#!/usr/bin/env bash
# Install the waste-sorting kiosk on Raspberry Pi OS (Debian Bookworm).
#
# Runs as root, inside the pi-gen image chroot (deploy/pi-gen/stage-kiosk) or
# on a running Pi. Safe to run again: every step checks before it changes.
#
#   install.sh [--src DIR] [--image] [--no-apt] [--wheels DIR]
#
#   --src DIR     the kiosk source tree (default: the folder above this script)
#   --image       also prepare an SD image: first-boot service (grows the data
#                 partition, turns on the read-only root), SSH off, console
#                 locked down. Leave it out on a Pi you are developing on.
#   --no-apt      do not install Debian packages (they must already be there)
#   --wheels DIR  install Python packages from DIR only (offline build)
#
# What it leaves: /opt/kiosk/venv (the app, with --system-site-packages so
# apt's python3-picamera2 and python3-lgpio are seen), /opt/kiosk/models,
# /etc/kiosk/config.yaml (+ /boot/firmware/kiosk.yaml to edit), the user
# "kiosk", /var/lib/kiosk, and kiosk.service enabled.
set -euo pipefail

PREFIX=/opt/kiosk
DATA_DIR=/var/lib/kiosk
ETC_DIR=/etc/kiosk
BOOT_DIR=/boot/firmware
KIOSK_USER=kiosk
KIOSK_GROUPS=(video render input gpio)
MODEL_NAME=kiosk-lite0-int8.onnx
UPDATE_ROOT=update-root.json # the root.json of `kiosk model keys`, copied into models/ (README "Model updates")
DATA_LABEL=KIOSKDATA

# Debian packages the kiosk needs everywhere; Raspberry Pi OS only; --image only.
# EGL, GLES, GBM and the Mesa drivers: SDL's KMS/DRM video driver draws through them.
APT_PACKAGES=(python3 python3-venv systemd fonts-noto-cjk fonts-material-design-icons-iconfont libegl1 libgles2 libgbm1 libgl1-mesa-dri)
APT_PI_PACKAGES=(python3-picamera2 python3-lgpio)
APT_IMAGE_PACKAGES=(overlayroot cloud-guest-utils fdisk e2fsprogs)

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=0
APT=1
WHEELS=

log() { printf 'kiosk-install: %s\n' "$*"; }
warn() { printf 'kiosk-install: WARNING: %s\n' "$*" >&2; }
die() {
	printf 'kiosk-install: ERROR: %s\n' "$*" >&2
	exit 1
}
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--src)
		[ $# -ge 2 ] || die "--src needs a folder"
		SRC=$(cd "$2" && pwd) || die "--src: no such folder: $2"
		shift 2
		;;
	--image) IMAGE=1 && shift ;;
	--no-apt) APT=0 && shift ;;
	--wheels)
		[ $# -ge 2 ] || die "--wheels needs a folder"
		WHEELS=$(cd "$2" && pwd) || die "--wheels: no such folder: $2"
		shift 2
		;;
	-h | --help) usage && exit 0 ;;
	*) die "unknown option: $1 (see --help)" ;;
	esac
done

[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0)"
[ -f "$SRC/setup.py" ] && [ -f "$SRC/config.yaml" ] && [ -f "$SRC/systemd/kiosk.service" ] ||
	die "$SRC is not a kiosk source tree (setup.py, config.yaml, systemd/kiosk.service)"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
available() {
	local candidate
	candidate=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
	[ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

install_packages() {
	local wanted=("${APT_PACKAGES[@]}") missing=() p
	[ "$IMAGE" -eq 1 ] && wanted+=("${APT_IMAGE_PACKAGES[@]}")
	for p in "${wanted[@]}"; do installed "$p" || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ] || ! available python3-venv; then
		log "apt-get update"
		apt-get update -qq
	fi
	# Camera and GPIO bindings come from Raspberry Pi OS's archive; plain
	# Debian has no python3-picamera2, so they are installed where they exist.
	for p in "${APT_PI_PACKAGES[@]}"; do
		if ! installed "$p"; then
			if available "$p"; then missing+=("$p"); else warn "$p is not in this system's archive (not Raspberry Pi OS?): no Pi camera/GPIO"; fi
		fi
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
}

if [ "$APT" -eq 1 ]; then
	install_packages
else
	for p in "${APT_PACKAGES[@]}"; do installed "$p" || die "package $p is missing (and --no-apt was given)"; done
fi
command -v systemctl >/dev/null || die "systemctl not found (is systemd installed?)"

# --- user and folders ---------------------------------------------------------
for g in "${KIOSK_GROUPS[@]}"; do
	# gpio exists on Raspberry Pi OS only; made here so the unit works elsewhere.
	getent group "$g" >/dev/null || { log "creating group $g" && groupadd --system "$g"; }
done
if ! id "$KIOSK_USER" >/dev/null 2>&1; then
	log "creating user $KIOSK_USER"
	useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
		--shell /usr/sbin/nologin --comment "waste-sorting kiosk" "$KIOSK_USER"
fi
usermod -a -G "$(
	IFS=,
	echo "${KIOSK_GROUPS[*]}"
)" "$KIOSK_USER"

install -d -m 0755 "$PREFIX" "$PREFIX/bin" "$PREFIX/docs" "$ETC_DIR"
install -d -m 0750 -o "$KIOSK_USER" -g "$KIOSK_USER" "$DATA_DIR"

# --- the app ----------------------------------------------------------------
VENV="$PREFIX/venv"
if [ ! -x "$VENV/bin/python" ]; then
	log "creating $VENV (with system site-packages: picamera2, libcamera, lgpio come from apt)"
	python3 -m venv --system-site-packages "$VENV"
fi
pip_args=(--disable-pip-version-check --no-input --use-pep517 -c "$SRC/deploy/constraints.txt")
if [ -n "${KIOSK_PIP_CACHE:-}" ]; then pip_args+=(--cache-dir "$KIOSK_PIP_CACHE"); else pip_args+=(--no-cache-dir); fi
if [ -n "$WHEELS" ]; then
	log "installing the kiosk from $WHEELS (offline)"
	"$VENV/bin/pip" install "${pip_args[@]}" --no-index --find-links "$WHEELS" waste-kiosk
else
	log "installing the kiosk from $SRC"
	# Build from a copy: the source may be read-only, and pip builds in place.
	build=$(mktemp -d)
	trap 'rm -rf "$build"' EXIT
	tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' -cf - . | tar -C "$build" -xf -
	"$VENV/bin/pip" install "${pip_args[@]}" "$build"
fi
"$VENV/bin/python" -c "import kiosk" || die "the kiosk package does not import in $VENV"
# `kiosk stats`, `kiosk doctor` for a technician's shell (and sudo's PATH).
ln -sfn "$VENV/bin/kiosk" /usr/local/bin/kiosk

log "copying models"
rm -rf "$PREFIX/models.new"
if [ -d "$SRC/models" ]; then cp -r "$SRC/models" "$PREFIX/models.new"; else mkdir "$PREFIX/models.new"; fi
chmod -R u=rwX,go=rX "$PREFIX/models.new"
rm -rf "$PREFIX/models" && mv "$PREFIX/models.new" "$PREFIX/models"
[ -f "$PREFIX/models/$MODEL_NAME" ] || warn "no $MODEL_NAME in $SRC/models: the kiosk will show out-of-service until a model is installed"

[ -f "$SRC/README.md" ] && install -m 0644 "$SRC/README.md" "$PREFIX/docs/README.md"

# --- config -------------------------------------------------------------------
log "writing $ETC_DIR/config.yaml"
root_args=()
if [ -f "$PREFIX/models/$UPDATE_ROOT" ]; then
	root_args=(--trusted-root "$PREFIX/models/$UPDATE_ROOT")
else
	warn "no $UPDATE_ROOT in $SRC/models: signed model updates are off until updates.trusted_root is set"
fi
"$VENV/bin/python" "$SRC/deploy/image_config.py" "$SRC/config.yaml" \
	--data-dir "$DATA_DIR" --model "$PREFIX/models/$MODEL_NAME" "${root_args[@]}" >"$ETC_DIR/config.yaml.new"
chmod 0644 "$ETC_DIR/config.yaml.new"
mv "$ETC_DIR/config.yaml.new" "$ETC_DIR/config.yaml"
check_model=False
[ -f "$PREFIX/models/$MODEL_NAME" ] && check_model=True
"$VENV/bin/python" - "$ETC_DIR/config.yaml" "$check_model" <<'PY' || die "the generated config does not validate"
import sys
from kiosk.config import load_config
from kiosk.errors import ConfigError
try:
    load_config(sys.argv[1], check_model=sys.argv[2] == "True")
except ConfigError as e:
    print("\n".join(e.problems), file=sys.stderr)
    sys.exit(1)
PY
if [ -d "$BOOT_DIR" ]; then
	if [ -e "$BOOT_DIR/kiosk.yaml" ]; then
		log "$BOOT_DIR/kiosk.yaml exists: left as it is"
	else
		log "writing $BOOT_DIR/kiosk.yaml (the file a technician edits)"
		cp "$ETC_DIR/config.yaml" "$BOOT_DIR/kiosk.yaml"
	fi
else
	warn "$BOOT_DIR not found: no kiosk.yaml on the boot partition; /etc/kiosk/config.yaml is used"
fi

# --- service ------------------------------------------------------------------
log "installing kiosk.service"
install -m 0644 "$SRC/systemd/kiosk.service" /etc/systemd/system/kiosk.service
systemctl enable kiosk.service
# The kiosk owns tty1: no login prompt there.
systemctl mask getty@tty1.service

if [ "$IMAGE" -eq 0 ]; then
	log "done (not an image: no first-boot partitioning, root stays writable, SSH untouched)"
	exit 0
fi

# --- SD image only ----------------------------------------------------------
log "image: first-boot service (grow the data partition, read-only root)"
install -m 0755 "$SRC/deploy/rootfs/opt/kiosk/bin/kiosk-firstboot" "$PREFIX/bin/kiosk-firstboot"
install -m 0644 "$SRC/deploy/rootfs/etc/systemd/system/kiosk-firstboot.service" /etc/systemd/system/kiosk-firstboot.service
systemctl enable kiosk-firstboot.service
rm -f "$ETC_DIR/firstboot-done"

if ! grep -q "LABEL=$DATA_LABEL" /etc/fstab 2>/dev/null; then
	log "image: data partition $DATA_LABEL on $DATA_DIR in /etc/fstab"
	printf '%s\n' "# Kiosk data (event log, calibration): stays writable under the read-only root." \
		"LABEL=$DATA_LABEL $DATA_DIR ext4 defaults,noatime,nofail,x-systemd.device-timeout=20s 0 2" >>/etc/fstab
fi

# The root partition must not grow over the data partition behind it:
# take Raspberry Pi OS's first-boot resize off the kernel command line.
if [ -f "$BOOT_DIR/cmdline.txt" ]; then
	read -r -a tokens <"$BOOT_DIR/cmdline.txt" || true
	kept=()
	for t in "${tokens[@]}"; do
		case "$t" in
		resize | init=/usr/lib/raspberrypi-sys-mods/firstboot) log "image: dropping '$t' from cmdline.txt" ;;
		*) kept+=("$t") ;;
		esac
	done
	printf '%s\n' "${kept[*]}" >"$BOOT_DIR/cmdline.txt"
else
	warn "$BOOT_DIR/cmdline.txt not found: check the root resize is off before flashing"
fi

log "image: no network listeners: SSH off (an empty file named ssh on the boot partition turns it on until the next reboot), mDNS off"
systemctl disable ssh.service >/dev/null 2>&1 || true
rm -f "$BOOT_DIR/ssh" "$BOOT_DIR/ssh.txt"
systemctl mask avahi-daemon.service avahi-daemon.socket

log "image: console locked to the kiosk"
install -D -m 0644 "$SRC/deploy/rootfs/etc/systemd/logind.conf.d/kiosk.conf" /etc/systemd/logind.conf.d/kiosk.conf
install -D -m 0644 "$SRC/deploy/rootfs/etc/sysctl.d/99-kiosk.conf" /etc/sysctl.d/99-kiosk.conf
install -D -m 0755 "$SRC/deploy/rootfs/opt/kiosk/bin/kiosk-vt-lock" "$PREFIX/bin/kiosk-vt-lock"
install -D -m 0644 "$SRC/deploy/rootfs/etc/systemd/system/kiosk.service.d/10-console.conf" /etc/systemd/system/kiosk.service.d/10-console.conf
systemctl mask ctrl-alt-del.target autovt@.service

log "image: logs in RAM, no swap file on the read-only root, clock saved on the data partition"
install -D -m 0644 "$SRC/deploy/rootfs/etc/systemd/journald.conf.d/kiosk.conf" /etc/systemd/journald.conf.d/kiosk.conf
systemctl disable dphys-swapfile.service >/dev/null 2>&1 || true
if installed fake-hwclock; then
	# /etc/default/fake-hwclock is the package's own file: only its FILE= line changes.
	touch /etc/default/fake-hwclock
	sed -i '/^FILE=/d; /^# Kiosk: save the clock/,/^# date the image was built/d' /etc/default/fake-hwclock
	cat "$SRC/deploy/rootfs/etc/default/fake-hwclock" >>/etc/default/fake-hwclock
	install -D -m 0644 "$SRC/deploy/rootfs/etc/systemd/system/fake-hwclock.service.d/kiosk.conf" \
		/etc/systemd/system/fake-hwclock.service.d/kiosk.conf
fi

# overlayroot works from the initramfs: rebuild it for every installed kernel.
if command -v update-initramfs >/dev/null && compgen -G "/lib/modules/*" >/dev/null; then
	log "image: rebuilding the initramfs with overlayroot"
	update-initramfs -u -k all
else
	warn "no kernel in this tree: initramfs not rebuilt (fine in a test chroot, not on a Pi image)"
fi

log "done: SD image prepared (the first boot grows the data partition, turns the root read-only and reboots)"
