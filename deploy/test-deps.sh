#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: qemu-user, so the int8
# model is also checked on an emulated AVX2-only CPU (tests/test_kernels.py);
# mosquitto (and openssl for its test certificates), the MQTT broker the fleet
# tests start on loopback on a free port of their own (tests/test_fleet.py);
# Debian also starts its own mosquitto service, which listens on localhost only;
# fonts-noto-cjk and fonts-dejavu-core, the fonts the screens use for Chinese and
# Latin text (without them the rendering tests of those languages skip), and
# fonts-material-design-icons-iconfont, the bins' pictograms.
# As root it runs apt-get itself; as a desktop user it asks sudo (without sudo it
# says what to install and the tests run, skipping those). Nothing to do
# when everything is there already.
set -euo pipefail
need=()
command -v qemu-x86_64 >/dev/null 2>&1 || need+=(qemu-user)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -e /usr/share/fonts/truetype/material-design-icons-iconfont/MaterialIcons-Regular.ttf ] || need+=(fonts-material-design-icons-iconfont)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: not a Debian/Ubuntu system; install ${need[*]} yourself (those tests skip without it)" >&2
	exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		# nothing can install them here: say so, and let the tests run (those that need them skip)
		echo "test-deps: not root and no sudo; as root: apt-get install ${need[*]} (those tests skip without it)" >&2
		exit 0
	fi
	as_root=(sudo)
fi
echo "test-deps: installing ${need[*]}"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
