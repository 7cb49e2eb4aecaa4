#!/usr/bin/env bash
# Refresh the two locks from setup.py's open ranges, then run the tests on the new desktop lock.
#
#   deploy/refresh-constraints.sh        # rewrites constraints.txt and deploy/constraints.txt
#
# constraints.txt: desktops and CI (dev + train extras), whatever pip resolves today.
# deploy/constraints.txt: the kiosk image's runtime, with numpy < 2 and OpenCV < 4.12
# (apt's picamera2 on Raspberry Pi OS is built against numpy 1.x).
# Nothing is written unless the test suite passes on the new desktop lock.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

freeze() { "$1/bin/pip" freeze --exclude-editable | grep -v -i '^waste-kiosk' | sed 's/+cpu$//'; }

echo "== desktop/CI lock: fresh venv, open ranges"
python3 -m venv "$work/desk"
"$work/desk/bin/pip" install -q --disable-pip-version-check -e '.[dev,train]'
{ sed -n '/^#/p' constraints.txt; freeze "$work/desk"; } > "$work/constraints.txt"

echo "== image lock: fresh venv, runtime only, numpy < 2"
python3 -m venv "$work/image"
printf 'numpy<2\nopencv-python-headless<4.12\n' > "$work/caps.txt"
"$work/image/bin/pip" install -q --disable-pip-version-check -c "$work/caps.txt" .
{ sed -n '/^#/p' deploy/constraints.txt; freeze "$work/image"; } > "$work/image-constraints.txt"

echo "== the gate: the whole test suite on the new desktop lock"
"$work/desk/bin/pip" install -q --disable-pip-version-check -c "$work/constraints.txt" -e '.[dev,train]'
SDL_VIDEODRIVER=dummy "$work/desk/bin/python" -m pytest -q

cp "$work/constraints.txt" constraints.txt
cp "$work/image-constraints.txt" deploy/constraints.txt
git --no-pager diff --stat -- constraints.txt deploy/constraints.txt || true
echo "locks refreshed; commit them with the model figures re-checked (tests/test_model.py passed above)"
