#!/usr/bin/env bash
# Append the kiosk's data partition to a built SD image.
#
#   add-data-partition.sh IMAGE.img [SIZE_MIB]
#
# The image from pi-gen has two partitions (boot, root). This adds a third,
# ext4, labelled KIOSKDATA (default 256 MiB), right after the root; the
# kiosk's first boot grows it to the end of the card. It holds the event log
# and calibration and stays writable when the root is made read-only.
# Works on the image file itself: no loop device, no root needed.
set -euo pipefail

LABEL=KIOSKDATA
SECTOR=512
ALIGN=2048 # 1 MiB in sectors

die() {
	printf 'add-data-partition: ERROR: %s\n' "$*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 IMAGE.img [SIZE_MIB]"
img=$1
size_mib=${2:-256}
[ -f "$img" ] || die "no such image: $img"
[[ "$size_mib" =~ ^[0-9]+$ ]] && [ "$size_mib" -ge 16 ] || die "SIZE_MIB must be a whole number, at least 16 (got $size_mib)"
for tool in sfdisk mkfs.ext4 truncate; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install fdisk e2fsprogs coreutils)"
done

dump=$(sfdisk --dump "$img") || die "$img has no readable partition table"
grep -q '^label: dos' <<<"$dump" || die "$img: expected an MBR (dos) partition table, as pi-gen makes"
nparts=$(grep -c ': start=' <<<"$dump" || true)
[ "$nparts" -eq 2 ] || die "$img: expected 2 partitions (boot, root), found $nparts; already done?"

# End of the last partition, in sectors.
end=0
while read -r start size; do
	[ $((start + size)) -gt "$end" ] && end=$((start + size))
done < <(sed -n 's/.*start= *\([0-9]*\), *size= *\([0-9]*\).*/\1 \2/p' <<<"$dump")
[ "$end" -gt 0 ] || die "$img: could not read the partition layout"

start=$(((end + ALIGN - 1) / ALIGN * ALIGN))
sectors=$((size_mib * 1024 * 1024 / SECTOR))
truncate -s $(((start + sectors) * SECTOR)) "$img"
echo "start=$start, size=$sectors, type=83" | sfdisk --append --no-reread --no-tell-kernel --quiet "$img"
mkfs.ext4 -q -F -b 4096 -T default -m 1 -L "$LABEL" -E "offset=$((start * SECTOR))" "$img" "${size_mib}M"
echo "add-data-partition: $img: partition 3 ($LABEL, ext4, ${size_mib} MiB) at sector $start"
