"""The one config file a technician edits, validated into a typed schema.

Unknown keys are rejected, every number is bounded, and every check that
spans sections lives in :func:`cross_check`. Problems are reported as
``key.path: what is wrong``; nothing in the file is ever executed
(``kiosk.configfile``: a strict SafeLoader).
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kiosk.errors import ConfigError, excerpt
from kiosk.preprocess import ClaheSettings

HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"
# Older configs and lang files say "zh"; the kiosk's own name for it is the BCP 47 tag zh-CN.
LANG_ALIASES = {"zh": "zh-CN"}


def canonical_lang(code: str) -> str:
    """A BCP 47 language tag as the kiosk spells it: ``zh-cn`` -> ``zh-CN``, ``zh`` -> ``zh-CN``, ``EN`` -> ``en``."""
    parts = str(code).replace("_", "-").split("-")
    tag = "-".join([parts[0].lower()] + [p.upper() if len(p) == 2 else p.title() for p in parts[1:]])
    return LANG_ALIASES.get(tag, tag)


LANG = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z]{2,4})?$"), AfterValidator(canonical_lang)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraBackend(str, Enum):
    auto = "auto"
    picamera2 = "picamera2"
    opencv = "opencv"
    replay = "replay"
    synthetic = "synthetic"


class CameraConfig(Strict):
    backend: CameraBackend = Field(CameraBackend.auto, description="Where frames come from; auto tries picamera2, opencv, synthetic.")
    size: tuple[Annotated[int, Field(ge=160, le=1920)], Annotated[int, Field(ge=120, le=1080)]] = Field(
        (640, 480), description="Analysis frame size WxH (the model stream)."
    )
    preview_size: Optional[tuple[Annotated[int, Field(ge=160, le=4056)], Annotated[int, Field(ge=120, le=3040)]]] = Field(
        None, description="Bigger stream for the screen (picamera2 only); null shows the analysis frame."
    )
    fps: float = Field(30.0, ge=1, le=120, description="Target frame rate; replay is paced to it.")
    device: Union[Annotated[int, Field(ge=0, le=63)], str] = Field(0, description="opencv: V4L2 index or device path.")
    path: Optional[str] = Field(None, description="replay: a folder of images or a video file.")
    loop: bool = Field(True, description="replay: start again at the end.")
    seed: int = Field(0, ge=0, description="synthetic: scene generator seed.")
    retry_max_s: float = Field(30.0, ge=1, le=600, description="Longest wait between camera reconnect attempts.")


class EnhanceConfig(Strict):
    clahe: ClaheSettings = ClaheSettings()  # the preprocessing's own type, validated here


class ModelConfig(Strict):
    path: str = Field("models/kiosk-lite0-int8.onnx", description="int8 ONNX model; its JSON card lies beside it. Relative to this file.")
    threads: int = Field(2, ge=1, le=8, description="onnxruntime intra-op threads.")


class PresenceConfig(Strict):
    analysis_width: int = Field(160, ge=64, le=640, description="Width of the small grey image the gate looks at.")
    var_threshold: float = Field(40.0, ge=4, le=400, description="MOG2 variance threshold: higher ignores more noise.")
    learning_rate: float = Field(0.01, ge=0.0, le=0.2, description="Background learning rate while idle (0 freezes it).")
    min_area: float = Field(0.03, ge=0.002, le=0.6, description="Foreground fraction of the view that counts as an item.")
    max_area: float = Field(0.85, ge=0.1, le=1.0, description="Above this the whole view changed (light switch, lens covered): not an item.")
    enter_frames: int = Field(3, ge=1, le=60, description="Consecutive frames with an item before it counts as present.")
    leave_frames: int = Field(5, ge=1, le=120, description="Consecutive empty frames before it counts as gone.")
    warmup_frames: int = Field(15, ge=1, le=600, description="Frames to learn the empty scene at start.")
    roi_margin: float = Field(0.15, ge=0.0, le=1.0, description="Extra border around the item's box, as a fraction of its size.")
    absorb_frames: int = Field(600, ge=30, le=36000, description="Something present this long without a break is learnt as background (a forgotten object).")


class DecisionConfig(Strict):
    window: int = Field(5, ge=1, le=30, description="Recent predictions that vote (each for the bin its class scores sum highest in).")
    min_votes: int = Field(3, ge=1, le=30, description="Votes the winning bin needs within the window.")
    threshold: float = Field(0.6, ge=0.0, le=1.0, description="Mean score (its classes summed) the winning bin needs; below it the kiosk is unsure.")
    min_look_s: float = Field(0.3, ge=0.0, le=5.0, description="Look at least this long before deciding.")
    look_timeout_s: float = Field(2.0, ge=0.2, le=20.0, description="No agreement by then: unsure.")
    decided_s: float = Field(0.8, ge=0.1, le=10.0, description="Show the decision before waiting for the drop.")
    drop_timeout_s: float = Field(8.0, ge=1.0, le=60.0, description="Wait this long for the item to land, then close.")
    thanks_s: float = Field(2.5, ge=0.5, le=30.0)
    unsure_timeout_s: float = Field(15.0, ge=2.0, le=120.0, description="Nobody chose a bin: back to idle.")
    fallback_bin: Optional[str] = Field(None, description="Bin suggested when the right one is full.")


class FlapConfig(Strict):
    type: Literal["servo", "output"] = Field("servo", description="Hobby servo (PWM) or a plain output (solenoid, motor driver).")
    pin: int = Field(ge=0, le=27, description="BCM GPIO number.")
    open_pulse_ms: float = Field(2.0, ge=0.5, le=2.5, description="servo: pulse width when open.")
    closed_pulse_ms: float = Field(1.0, ge=0.5, le=2.5, description="servo: pulse width when closed.")
    active_high: bool = Field(True, description="output: high means open.")
    closed_switch_pin: Optional[int] = Field(None, ge=0, le=27, description="Optional switch that reads closed.")
    max_open_s: float = Field(10.0, ge=1.0, le=60.0, description="A flap never stays open longer than this.")
    close_check_s: float = Field(1.0, ge=0.1, le=10.0, description="Time for the closed switch to report after closing.")


class ScaleConfig(Strict):
    type: Literal["hx711", "iio", "none"] = "hx711"
    data_pin: Optional[int] = Field(None, ge=0, le=27, description="hx711: DOUT, BCM number.")
    clock_pin: Optional[int] = Field(None, ge=0, le=27, description="hx711: PD_SCK, BCM number.")
    gain: Literal[128, 64, 32] = Field(128, description="hx711: 128/64 are channel A, 32 is channel B.")
    iio_device: Optional[str] = Field(None, description="iio: e.g. iio:device0.")
    drop_min_g: float = Field(5.0, ge=0.5, le=5000, description="Weight rise that confirms a drop.")


class BinConfig(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")
    name: dict[LANG, Annotated[str, Field(min_length=1, max_length=40)]]
    colour: str = Field(pattern=HEX_COLOUR)
    position: Literal["far_left", "left", "centre", "right", "far_right"] = "centre"
    flap: Optional[FlapConfig] = None
    scale: ScaleConfig = ScaleConfig(type="none")
    capacity_kg: float = Field(20.0, ge=0.1, le=500)
    near_full: float = Field(0.85, ge=0.1, le=1.0, description="Fill fraction that warns.")
    icon: Optional[str] = Field(None, pattern=r"^[a-z0-9_]{1,40}$",
                                description="Material Icons name of the bin's pictogram (fonts.google.com/icons), e.g. recycling.")


class RuleConfig(Strict):
    bin: str
    guidance: dict[LANG, list[Annotated[str, Field(min_length=1, max_length=80)]]] = Field(default_factory=dict)


class SoundConfig(Strict):
    """Short tones for decided, not sure, thanks and faults (generated at start-up; no files)."""

    enabled: bool = Field(True, description="Play the cues; without an audio device the kiosk is silent anyway.")
    volume: float = Field(0.6, ge=0.0, le=1.0, description="0 (silent) to 1.")


class UiConfig(Strict):
    size: tuple[Annotated[int, Field(ge=320, le=3840)], Annotated[int, Field(ge=240, le=2160)]] = (800, 480)
    fullscreen: bool = False
    fps: int = Field(30, ge=5, le=60)
    languages: list[LANG] = Field(["en", "zh-CN"], min_length=1)
    default_language: LANG = "en"
    tips: dict[LANG, list[Annotated[str, Field(min_length=1, max_length=120)]]] = Field(default_factory=dict)
    tip_seconds: float = Field(6.0, ge=1, le=120)
    sound: SoundConfig = SoundConfig()


class GpioConfig(Strict):
    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "native"] = Field(
        "auto", description="gpiozero backend; mock simulates pins (desktop, tests)."
    )


# iterations 1000..9999999 (a 20-digit count overflowed, a 10-digit one froze the pad for minutes),
# salt 8..64 bytes as hex
PIN_HASH_PATTERN = r"^pbkdf2_sha256\$[1-9]\d{3,6}\$(?:[0-9a-f]{2}){8,64}\$[0-9a-f]{64}$"


def check_pin_hash(v: str) -> str:
    """The one check of a stored hash, wherever it is kept (the config, ``service.pin_hash_file``)."""
    if not re.fullmatch(PIN_HASH_PATTERN, v):
        raise ValueError("not a PIN hash (pbkdf2_sha256$ITERATIONS$SALT$HASH): make it with `kiosk hash-pin`")
    if not PIN_ITERATIONS[0] <= int(v.split("$")[1]) <= PIN_ITERATIONS[1]:
        raise ValueError(f"iterations must be {PIN_ITERATIONS[0]}..{PIN_ITERATIONS[1]}: make it with `kiosk hash-pin`")
    return v


class ServiceConfig(Strict):
    pin_hash: Optional[str] = Field(
        None, max_length=300,
        description="Service-screen PIN, hashed: make one with `kiosk hash-pin`. Readable by anyone who can read "
                    "this file: prefer pin_hash_file.",
    )
    pin_hash_file: Optional[str] = Field(
        None, max_length=4096,
        description="A file holding the PIN hash, readable by the kiosk only (`sudo kiosk hash-pin --save FILE`), "
                    "e.g. /var/lib/kiosk/service-pin. Relative to this file unless absolute. Read when the pad is used.",
    )

    @field_validator("pin_hash")
    @classmethod
    def _hash_checked(cls, v):
        return v if v is None else check_pin_hash(v)


class StorageConfig(Strict):
    data_dir: str = Field("~/.local/share/kiosk", description="Event log, calibration. Relative to this file unless absolute or ~.")
    retention_days: int = Field(365, ge=1, le=3650)
    capture_images: bool = Field(False, description="Store camera crops with events (privacy: off by default).")


class FleetTlsConfig(Strict):
    ca_file: Optional[str] = Field(None, max_length=4096, description="CA certificate(s) the broker's certificate must chain to (PEM). Unset: the system's CAs.")
    cert_file: Optional[str] = Field(None, max_length=4096, description="Client certificate (PEM), when the broker asks for one.")
    key_file: Optional[str] = Field(None, max_length=4096, description="The client certificate's key (PEM), readable by the kiosk only (data partition, mode 0600).")


SITE_ID = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"


class SiteConfig(Strict):
    """Who this kiosk is and whom the public tells when it is out of service (the fault screens)."""

    id: Optional[str] = Field(None, pattern=SITE_ID, description="This kiosk's name (also the fleet's site_id).")
    contact: Optional[str] = Field(None, min_length=3, max_length=60,
                                   description="Shown to the public on fault screens, e.g. a phone number.")
    qr_url: Optional[str] = Field(None, min_length=8, max_length=300, pattern=r"^(https?://|mailto:|tel:)\S+$",
                                  description="Encoded in the fault screens' QR code; {site_id} is replaced.")


class FleetConfig(Strict):
    """Telemetry to the city's MQTT broker. Off by default; the kiosk only connects out."""

    enabled: bool = Field(False, description="Publish status, health, fill, events and daily counts.")
    host: Optional[str] = Field(None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$",
                                description="The broker's host name or address.")
    port: int = Field(8883, ge=1, le=65535, description="8883 with TLS, 1883 without.")
    tls: Optional[FleetTlsConfig] = Field(FleetTlsConfig(), description="TLS settings; null: no TLS (a closed network only).")
    username: Optional[str] = Field(None, min_length=1, max_length=200)
    password_file: Optional[str] = Field(None, max_length=4096,
                                         description="A file holding the password, readable by the kiosk only: on the data partition, "
                                                     "e.g. /var/lib/kiosk/fleet-password, mode 0600 (kiosk doctor "
                                                     "checks). Relative to this file unless absolute.")
    site_id: Optional[str] = Field(None, pattern=SITE_ID, description="This kiosk's name in the fleet (default: site.id).")
    topic_prefix: str = Field("kiosk", pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$", max_length=100)
    keepalive_s: int = Field(60, ge=10, le=1200)
    fill_alert: float = Field(0.85, ge=0.1, le=1.0, description="Fill fraction that raises a bin's alert flag.")

    def secret_files(self) -> list[tuple[str, Optional[str], str]]:
        """(key, value as written, what it holds) of the fleet's files only the kiosk may read."""
        return [("fleet.password_file", self.password_file, "the broker password"),
                ("fleet.tls.key_file", self.tls.key_file if self.tls is not None else None, "the client key")]


class UpdatesConfig(Strict):
    """Signed model updates (README "Model updates"). The daily check is off by default."""

    trusted_root: Optional[str] = Field(None, max_length=4096,
                                        description="The repository's root.json, put in the image (kiosk model keys makes it).")
    source: Optional[str] = Field(None, min_length=1, max_length=2048, pattern=r"^(https?://\S+|file://\S+|[^:\s][^\n]*)$",
                                  description="http(s) URL of the update repository, or a folder (a USB stick).")
    daily_check: bool = Field(False, description="Look for a new model once a day (needs source and trusted_root).")
    check_hour: int = Field(3, ge=0, le=23, description="Local hour of the daily check.")


class KioskConfig(Strict):
    camera: CameraConfig = CameraConfig()
    enhance: EnhanceConfig = EnhanceConfig()
    model: ModelConfig = ModelConfig()
    presence: PresenceConfig = PresenceConfig()
    decision: DecisionConfig = DecisionConfig()
    bins: list[BinConfig] = Field(min_length=1, max_length=8)
    rules: dict[str, RuleConfig] = Field(min_length=1)
    ui: UiConfig = UiConfig()
    gpio: GpioConfig = GpioConfig()
    service: ServiceConfig = ServiceConfig()
    storage: StorageConfig = StorageConfig()
    site: SiteConfig = SiteConfig()
    fleet: FleetConfig = FleetConfig()
    updates: UpdatesConfig = UpdatesConfig()

    # Set by load_config (not from YAML): where relative paths start.
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _site_id_for_the_fleet(self):
        """One name per kiosk: ``fleet.site_id`` unset means ``site.id``, and the other way round.

        A kiosk set up for the fleet before ``site`` existed names itself in ``fleet.site_id`` only;
        its fault screens show that name and put it in the QR code's ``{site_id}``.
        """
        if self.fleet.site_id is None and self.site.id is not None:
            object.__setattr__(self, "fleet", self.fleet.model_copy(update={"site_id": self.site.id}))
        elif self.site.id is None and self.fleet.site_id is not None:
            object.__setattr__(self, "site", self.site.model_copy(update={"id": self.fleet.site_id}))
        return self

    @field_validator("bins")
    @classmethod
    def _unique_bins(cls, bins):
        ids = [b.id for b in bins]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"bin id used twice: {', '.join(dupes)}")
        return bins

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def model_path(self) -> Path:
        return self.resolve(self.model.path)

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.storage.data_dir)

    @property
    def pin_hash_path(self) -> Optional[Path]:
        return self.resolve(self.service.pin_hash_file) if self.service.pin_hash_file else None

    def secret_files(self) -> list[tuple[str, Path, str]]:
        """(key, path, what it holds) of each file that must be the kiosk's alone (kiosk check-config, doctor)."""
        named = [("service.pin_hash_file", self.service.pin_hash_file, "the hash"), *self.fleet.secret_files()]
        return [(key, self.resolve(v), what) for key, v, what in named if v]

    def bin(self, bin_id: str) -> BinConfig:
        for b in self.bins:
            if b.id == bin_id:
                return b
        raise KeyError(bin_id)


def bin_key(bin_id: object, index: int) -> str:
    """How an error names a bin: by its id (``bins[glass]``), by position only when it has none."""
    return f"bins[{bin_id}]" if isinstance(bin_id, str) and bin_id else f"bins.{index}"


def _gpio_pins(cfg: KioskConfig):
    for i, b in enumerate(cfg.bins):
        if b.flap:
            yield f"{bin_key(b.id, i)}.flap.pin", b.flap.pin
            if b.flap.closed_switch_pin is not None:
                yield f"{bin_key(b.id, i)}.flap.closed_switch_pin", b.flap.closed_switch_pin
        if b.scale.type == "hx711":
            yield f"{bin_key(b.id, i)}.scale.data_pin", b.scale.data_pin
            yield f"{bin_key(b.id, i)}.scale.clock_pin", b.scale.clock_pin


def cross_check(cfg: KioskConfig, check_model: bool = True) -> list[str]:
    """Every check that spans sections, in one place. Returns problems."""
    problems = []
    bin_ids = {b.id for b in cfg.bins}
    langs = cfg.ui.languages

    if cfg.ui.default_language not in langs:
        problems.append(f"ui.default_language: '{cfg.ui.default_language}' is not in ui.languages {langs}")
    for i, b in enumerate(cfg.bins):
        for lang in langs:
            if lang not in b.name:
                problems.append(f"{bin_key(b.id, i)}.name: no name in language '{lang}'")
        if b.scale.type == "hx711" and (b.scale.data_pin is None or b.scale.clock_pin is None):
            problems.append(f"{bin_key(b.id, i)}.scale: hx711 needs data_pin and clock_pin")
        if b.scale.type == "iio" and not b.scale.iio_device:
            problems.append(f"{bin_key(b.id, i)}.scale.iio_device: required for an iio scale")
        open_needed = cfg.decision.decided_s + cfg.decision.drop_timeout_s
        if b.flap and b.flap.max_open_s < open_needed:
            problems.append(f"{bin_key(b.id, i)}.flap.max_open_s: {b.flap.max_open_s} s is shorter than decision.decided_s + "
                            f"decision.drop_timeout_s ({open_needed:g} s): the flap would close while the screen says 'drop it'")
        if b.flap and b.flap.type == "servo" and b.flap.open_pulse_ms == b.flap.closed_pulse_ms:
            problems.append(f"{bin_key(b.id, i)}.flap: open_pulse_ms equals closed_pulse_ms, the flap would never move")
    from kiosk.screens.theme import MIN_CONTRAST, bin_text_contrast, hex_rgb

    for i, b in enumerate(cfg.bins):
        worst = bin_text_contrast(hex_rgb(b.colour))
        if worst < MIN_CONTRAST:
            problems.append(f"{bin_key(b.id, i)}.colour: {b.colour} gives text only {worst:.1f}:1 contrast (at least "
                            f"{MIN_CONTRAST}:1 so everyone can read it); pick a darker or lighter shade")
    for cls, rule in cfg.rules.items():
        if rule.bin not in bin_ids:
            problems.append(f"rules.{cls}.bin: unknown bin '{rule.bin}' (bins are {', '.join(sorted(bin_ids))})")
        for lang in langs:
            if lang not in rule.guidance:
                problems.append(f"rules.{cls}.guidance: no guidance in language '{lang}'")
    for lang in langs:
        if lang not in cfg.ui.tips:
            problems.append(f"ui.tips: no tips in language '{lang}'")

    seen = {}
    for key, pin in _gpio_pins(cfg):
        if pin is None:
            continue
        if pin in seen:
            problems.append(f"{key}: GPIO{pin} is already used by {seen[pin]}")
        else:
            seen[pin] = key

    fb = cfg.decision.fallback_bin
    if fb is not None and fb not in bin_ids:
        problems.append(f"decision.fallback_bin: unknown bin '{fb}'")
    if cfg.decision.min_votes > cfg.decision.window:
        problems.append(f"decision.min_votes: {cfg.decision.min_votes} is more than decision.window ({cfg.decision.window})")
    if cfg.decision.min_look_s >= cfg.decision.look_timeout_s:
        problems.append("decision.min_look_s: must be shorter than decision.look_timeout_s")
    if cfg.presence.min_area >= cfg.presence.max_area:
        problems.append("presence.min_area: must be smaller than presence.max_area")
    if cfg.camera.backend == CameraBackend.replay and not cfg.camera.path:
        problems.append("camera.path: required when camera.backend is replay")
    if cfg.site.qr_url and "{site_id}" in cfg.site.qr_url and cfg.site.id is None:  # a QR code for "kiosk=" nobody
        problems.append("site.qr_url: uses {site_id} but site.id is not set (the QR code would name no kiosk)")
    fl = cfg.fleet
    if fl.enabled:
        problems += [f"fleet.{k}: required when fleet.enabled is true" for k in ("host", "site_id")
                     if getattr(fl, k) is None]
    if fl.password_file and not fl.username:
        problems.append("fleet.password_file: needs fleet.username")
    if fl.tls is not None and bool(fl.tls.cert_file) != bool(fl.tls.key_file):
        problems.append("fleet.tls: cert_file and key_file go together")
    if cfg.updates.daily_check:
        problems += [f"updates.{k}: required when updates.daily_check is true" for k in ("source", "trusted_root")
                     if getattr(cfg.updates, k) is None]
    if cfg.service.pin_hash and cfg.service.pin_hash_file:
        problems.append("service.pin_hash_file: set it or service.pin_hash, not both (keep the hash in the file)")

    if check_model:
        problems += _check_model_classes(cfg)
    return problems


def _check_model_classes(cfg: KioskConfig) -> list[str]:
    model = cfg.model_path
    if not model.is_file():
        return [f"model.path: model file not found: {model}"]
    from kiosk.classifier import ModelCard, card_path  # the card's one reader
    from kiosk.errors import ModelError

    try:
        classes = ModelCard.load(card_path(model)).classes
    except ModelError as e:
        return [f"model.path: {e}"]
    missing = [c for c in classes if c not in cfg.rules]
    extra = [c for c in cfg.rules if c not in classes]
    problems = [f"rules: class '{c}' of the model has no rule (which bin?)" for c in missing]
    problems += [f"rules.{c}: not a class of the model (classes are {', '.join(classes)})" for c in extra]
    return problems


def _format_loc(loc, bin_ids=()) -> str:
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "bins" and isinstance(loc[1], int):
        parts[:2] = [bin_key(bin_ids[loc[1]] if loc[1] < len(bin_ids) else None, loc[1])]
    return ".".join(parts) or "(top level)"


def _describe(err, bin_ids=()) -> str:
    msg = err["msg"]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # models; dataclasses (enhance.clahe)
        msg = "unknown key (not allowed here; check spelling and indentation)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif "input" in err and err["type"] not in ("model_type", "dict_type", "list_type"):
        msg = f"{msg} (got {excerpt(err['input'])})"
    return f"{_format_loc(err['loc'], bin_ids)}: {msg}"


def parse_config(data, base_dir: Path = Path("."), source: str | None = None, check_model: bool = True) -> KioskConfig:
    """Validate already-parsed YAML data. Raises ConfigError listing every problem."""
    if data is None:
        raise ConfigError(["(top level): the file is empty"], source)
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): expected a mapping of sections, got {type(data).__name__}"], source)
    try:
        cfg = KioskConfig.model_validate({**data, "base_dir": Path(base_dir)})
    except ValidationError as e:
        bins = data.get("bins")
        ids = [b.get("id") if isinstance(b, dict) else None for b in bins] if isinstance(bins, list) else []
        raise ConfigError([_describe(err, ids) for err in e.errors()], source) from None
    problems = cross_check(cfg, check_model=check_model)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def load_config(path: str | Path, check_model: bool = True) -> KioskConfig:
    """Read, parse and validate a config file; every failure is a ConfigError."""
    from kiosk.configfile import read_yaml

    path = Path(path).expanduser()
    data = read_yaml(path)
    return parse_config(data, base_dir=path.resolve().parent, source=str(path), check_model=check_model)


PIN_HASH_ITERATIONS = 200_000
MIN_PIN_DIGITS = 6  # a million PINs: ~1 day for an offline search of a stolen hash at 200k iterations


def read_pin_hash(path: Path) -> str:
    """The hash kept in ``service.pin_hash_file``: OSError when unreadable, ValueError when it is not a hash."""
    with open(path, "rb") as f:
        raw = f.read(4097)
    if len(raw) > 4096:
        raise ValueError("larger than a PIN hash")
    try:
        return check_pin_hash(raw.decode("ascii").strip())
    except UnicodeDecodeError:
        raise ValueError("not a PIN hash (not ASCII)") from None
FAT_TYPES = ("vfat", "msdos", "exfat", "fat")  # no owner and no modes: whoever holds the card reads every file
SECRET_HOME = "/var/lib/kiosk"  # the data partition (ext4, owner kiosk), README "Where things are"


def _filesystem(path: Path, mounts: Path = Path("/proc/self/mounts")) -> tuple[str, str]:
    """(mount point, type) of the filesystem ``path`` is on; ("", "") when /proc says nothing."""
    try:
        lines = mounts.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "", ""
    where, best = str(path.resolve()), ("", "")
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (where == point or where.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def secret_file_problem(key: str, path: Path, what: str, mounts: Path = Path("/proc/self/mounts")) -> Optional[str]:
    """The one check of a file holding a secret (``service.pin_hash_file``, ``fleet.password_file``,
    ``fleet.tls.key_file``): only the kiosk may read it. None when it is kept so; else what to do.

    Why where it lives as well as its mode: a relative path resolves next to kiosk.yaml, which on a kiosk is
    the boot partition, FAT: its files show the mount's mode, and no chmod keeps the card's holder out.
    Raises OSError when the file cannot be looked at (the callers' rows and lines say so).
    """
    point, fstype = _filesystem(path, mounts)
    if fstype in FAT_TYPES:
        return (f"{key}: {path} is on a FAT partition ({point}, the boot partition?): anyone who holds the card "
                f"reads {what}; move it to {SECRET_HOME} (the data partition), chmod 600, and name it there")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return f"{key}: {path} is mode {mode:o}: others can read {what} (chmod 600 {path})"
    return None


PIN_ITERATIONS = (1_000, 2_000_000)  # what a hash may ask for: the pad answers within a second or two


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = PIN_HASH_ITERATIONS) -> str:
    """``pbkdf2_sha256$iterations$salt$hash`` for the service PIN."""
    import hashlib
    import os

    if not re.fullmatch(rf"\d{{{MIN_PIN_DIGITS},12}}", pin):
        raise ValueError(f"a service PIN is {MIN_PIN_DIGITS} to 12 digits")
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, pin_hash: str | None) -> bool:
    import hashlib
    import hmac

    if not pin_hash:
        return False
    try:
        _, iterations, salt, digest = pin_hash.split("$")
        n = int(iterations)
        if not PIN_ITERATIONS[0] <= n <= PIN_ITERATIONS[1]:
            return False  # never run an unbounded hash on the touchscreen's thread
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), n)
    except (ValueError, OverflowError):  # a malformed hash is a wrong PIN, never a crash
        return False
    return hmac.compare_digest(got.hex(), digest)
