#!/bin/bash -e
# pi-gen runs this on the build host, in this folder, after 00-packages-nr.
# It copies the kiosk source into the image and runs deploy/install.sh there.
REPO="${KIOSK_REPO:-$(cd ../../../.. && pwd)}"
SRC_IN_IMAGE=/tmp/kiosk-src

[ -f "${REPO}/deploy/install.sh" ] || {
	echo "kiosk stage: ${REPO} is not the kiosk repository (set KIOSK_REPO)" >&2
	exit 1
}
rm -rf "${ROOTFS_DIR:?}${SRC_IN_IMAGE}"
mkdir -p "${ROOTFS_DIR}${SRC_IN_IMAGE}"
tar -C "${REPO}" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
	--exclude='*.egg-info' --exclude='__pycache__' -cf - . | tar -C "${ROOTFS_DIR}${SRC_IN_IMAGE}" -xf -

on_chroot <<EOC
${SRC_IN_IMAGE}/deploy/install.sh --src ${SRC_IN_IMAGE} --image
EOC

rm -rf "${ROOTFS_DIR:?}${SRC_IN_IMAGE}"
