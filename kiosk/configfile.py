"""Reading the YAML a technician edits: plain data out, or a ConfigError naming the line.

The file comes from a FAT boot partition anyone can write, so reading it must
never stall or crash start-up before the out-of-service screen can say what
is wrong: the size is capped, aliases (``*name``: the "billion laughs"
expansion) and duplicate keys (a second ``storage:`` would silently win) are
refused, and nesting deep enough to exhaust Python's stack is a config error
like any other. Nothing in the file is ever executed (a SafeLoader). Imports
only ``kiosk.errors``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kiosk.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a kiosk config is a few KB; 1 MiB leaves room for any comments


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in the kiosk config; "
                                              "write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' appears twice (first at line {seen[key] + 1}): keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path):
    """The file's data. Every failure (missing, too big, bad YAML) is a ConfigError for ``path``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError([f"config file not found: {path}"], None)
    if path.is_dir():
        raise ConfigError([f"{path} is a folder, not a config file"], None)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([f"the file is {size / 1e6:.1f} MB; a kiosk config is a few KB "
                               f"(at most {MAX_CONFIG_BYTES // 1024} KB): is it the right file?"], str(path))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read file: {e}"], str(path)) from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError([f"YAML syntax error at {_where(e)}: {_problem(e)}"], str(path)) from None
    except (RecursionError, MemoryError):
        raise ConfigError(["(top level): nested too deeply to read (hundreds of [ or { levels): "
                           "is it the right file?"], str(path)) from None


def _where(e: yaml.YAMLError) -> str:
    # The parser often notices a mistake on the next line (an unclosed quote or bracket, a
    # missing colon); context_mark is where the broken construct began: the line to fix.
    mark = getattr(e, "problem_mark", None)
    start = getattr(e, "context_mark", None)
    if mark and start and start.line < mark.line:
        return f"line {start.line + 1} (noticed at line {mark.line + 1}, column {mark.column + 1})"
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"


def _problem(e: yaml.YAMLError) -> str:
    return getattr(e, "problem", None) or str(e).splitlines()[0]
