#!/usr/bin/env python3
"""Make the SD image's kiosk.yaml from the repository's config.yaml.

Why text edits, not load-and-dump: the file is what a technician edits, and
config.yaml's comments are its manual. Only the values that differ on the
appliance are rewritten, in place; the result is parsed again and every
rewritten value is checked, so a change in config.yaml's layout fails the
image build instead of shipping a wrong config.

    image_config.py config.yaml --data-dir /var/lib/kiosk \
        --model /opt/kiosk/models/kiosk-lite0-int8.onnx \
        [--trusted-root /opt/kiosk/models/update-root.json] > kiosk.yaml
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

HEADER = """\
# Kiosk configuration on the SD image. Edit the copy on the boot partition
# (kiosk.yaml, readable from any laptop); the kiosk reads it at start and
# falls back to /etc/kiosk/config.yaml when it is absent. A mistake shows on
# the kiosk's out-of-service screen with the key that is wrong.
# Check a copy on a laptop with:  kiosk check-config kiosk.yaml
"""


class LayoutError(Exception):
    pass


def set_value(text: str, section: str, key: str, value) -> str:
    """Replace ``section.key``'s value on its own line, keeping its comment."""
    lines = text.splitlines(keepends=True)
    in_section = False
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]", line):  # a top-level key starts or ends the section
            in_section = re.match(rf"^{re.escape(section)}:\s*(#.*)?$", line.rstrip("\n")) is not None
            continue
        if not in_section:
            continue
        m = re.match(rf"^(\s+{re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*#.*)?(\n?)$", line)
        if m and len(m.group(1)) - len(m.group(1).lstrip()) == 2:
            comment = m.group(3) or ""
            lines[i] = f"{m.group(1)}{json.dumps(value)}{comment}{m.group(4)}"
            return "".join(lines)
    raise LayoutError(f"{section}.{key} not found as its own line in the config")


def make(text: str, data_dir: str, model: str, trusted_root: str | None = None) -> str:
    changes = {
        ("storage", "data_dir"): data_dir,
        ("model", "path"): model,
        ("ui", "fullscreen"): True,
    }
    if trusted_root is not None:  # the root.json of `kiosk model keys`, carried in the image's models/
        changes[("updates", "trusted_root")] = trusted_root
    for (section, key), value in changes.items():
        text = set_value(text, section, key, value)
    data = yaml.safe_load(text)
    for (section, key), value in changes.items():
        if data[section][key] != value:
            raise LayoutError(f"{section}.{key} is {data[section][key]!r} after the edit, expected {value!r}")
    return HEADER + text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="the repository's config.yaml")
    p.add_argument("--data-dir", required=True, help="storage.data_dir on the image (the data partition)")
    p.add_argument("--model", required=True, help="model.path on the image (absolute)")
    p.add_argument("--trusted-root", help="updates.trusted_root on the image (absolute): signed model updates")
    args = p.parse_args(argv)
    paths = [args.data_dir, args.model] + ([args.trusted_root] if args.trusted_root else [])
    if not all(Path(x).is_absolute() for x in paths):
        p.error("--data-dir, --model and --trusted-root must be absolute: the config may sit on the boot partition")
    try:
        sys.stdout.write(make(args.config.read_text(encoding="utf-8"), args.data_dir, args.model, args.trusted_root))
    except (OSError, LayoutError, yaml.YAMLError) as e:
        print(f"image_config: {args.config}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
