"""Every word the screen shows, per language: the UI's own (kiosk/lang/*.yaml)
and the site's (bin names, guidance, tips from config.yaml).

Drawing code asks for text by key and never spells any out, so a new
language is a YAML file and a config section, not a code change. A key
missing from a language falls back to English, and the log says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from kiosk.config import KioskConfig, canonical_lang

log = logging.getLogger(__name__)

LANG_DIR = Path(__file__).resolve().parents[1] / "lang"  # kiosk/lang (package data)
BASE = "en"


def _read(lang: str) -> dict:
    lang = canonical_lang(lang)
    for code in dict.fromkeys((lang, lang.split("-")[0])):
        path = LANG_DIR / f"{code}.yaml"
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                log.error("%s: expected a mapping of keys to text; ignoring it", path)
                return {}
            return data
    return {}


def chrome(lang: str) -> dict:
    """The UI's own wording for ``lang``, with English filling any gap (logged)."""
    lang = canonical_lang(lang)
    base = _read(BASE)
    if lang == BASE:
        return base
    own = _read(lang)
    if not own:
        log.warning("UI wording: no file kiosk/lang/%s.yaml; the screens' own words will be English", lang)
        return base
    gaps = sorted(k for k in base if k not in own)
    if gaps:
        log.warning("UI wording: kiosk/lang/%s.yaml lacks %s; using English for those", lang, ", ".join(gaps))
    merged = dict(base)
    merged.update(own)
    for k, v in base.items():  # nested tables (parts, materials) merge key by key
        if isinstance(v, dict) and isinstance(own.get(k), dict):
            merged[k] = {**v, **own[k]}
    return merged


class Wording:
    """Text lookup for the screens: ``t(lang, key, **values)`` and the config's own texts."""

    def __init__(self, cfg: KioskConfig):
        self.cfg = cfg
        self.langs = list(dict.fromkeys([*cfg.ui.languages, cfg.ui.default_language]))
        self._chrome = {lang: chrome(lang) for lang in self.langs}

    def t(self, lang: str, key: str, **values) -> str:
        lang = canonical_lang(lang)
        table = self._chrome.get(lang) or self._chrome.setdefault(lang, chrome(lang))
        text = table.get(key)
        if not isinstance(text, str):
            log.error("UI wording: no text for key '%s' in language '%s'", key, lang)
            return key
        if not values:
            return text
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError) as e:
            log.error("UI wording: '%s' in language '%s' has a bad placeholder (%s): %r", key, lang, e, text)
            return text

    def _table(self, lang: str, name: str) -> dict:
        table = self._chrome.get(canonical_lang(lang)) or {}
        v = table.get(name)
        return v if isinstance(v, dict) else {}

    def language_name(self, lang: str) -> str:
        return self.t(lang, "language_name") if canonical_lang(lang) in self._chrome else lang

    def bin_name(self, lang: str, bin_id: str) -> str:
        lang = canonical_lang(lang)
        try:
            names = self.cfg.bin(bin_id).name
        except KeyError:
            return bin_id
        return names.get(lang) or names.get(self.cfg.ui.default_language) or next(iter(names.values()))

    def material(self, lang: str, label: str | None) -> str:
        if not label:
            return ""
        return str(self._table(lang, "materials").get(label) or label.replace("_", " "))

    def part(self, lang: str, fault) -> str:
        """A fault's part in words: scale of bin glass -> "Scale (Glass)", in ``lang``."""
        kind = fault.kind.value
        name = str(self._table(lang, "parts").get(kind) or kind)
        return self.t(lang, "part_with_bin", part=name, bin=self.bin_name(lang, fault.bin_id)) if fault.bin_id else name

    def guidance(self, lang: str, label: str | None) -> list[str]:
        lang = canonical_lang(lang)
        rule = self.cfg.rules.get(label or "")
        if rule is None:
            return []
        return list(rule.guidance.get(lang) or rule.guidance.get(self.cfg.ui.default_language) or [])

    def tips(self, lang: str) -> list[str]:
        lang = canonical_lang(lang)
        tips = self.cfg.ui.tips
        return list(tips.get(lang) or tips.get(self.cfg.ui.default_language) or [])

    def all_text(self, lang: str) -> str:
        """Everything ``lang`` may show, for the font coverage check."""
        lang = canonical_lang(lang)
        parts: list[str] = []

        def walk(v):
            if isinstance(v, str):
                parts.append(v)
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(self._chrome.get(lang, {}))
        walk([b.name.get(lang, "") for b in self.cfg.bins])
        walk([r.guidance.get(lang, []) for r in self.cfg.rules.values()])
        walk(self.cfg.ui.tips.get(lang, []))
        parts.append("0123456789%.…")
        return "\n".join(parts)
