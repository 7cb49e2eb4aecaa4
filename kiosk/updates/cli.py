"""``kiosk model ...``: the publisher's commands (keys, publish, refresh) and the kiosk's (update, status, rollback).

Every refusal is an ``UpdateError`` with its code; ``kiosk.cli.main`` prints
it as ``error [E70x]: ...`` and exits 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiosk.errors import UpdateError


def _count(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 9:
        raise argparse.ArgumentTypeError("1 to 9")
    return n


def register(subparsers) -> None:
    from kiosk.appliance.configpath import CONFIG_HELP

    p = subparsers.add_parser("model", help="signed model updates: keys, publish, update, status, rollback",
                              description="Signed model updates through TUF (README 'Model updates').")
    sub = p.add_subparsers(dest="model_command", metavar="COMMAND")
    sub.required = True

    k = sub.add_parser("keys", help="make the signing keys and version 1 of a repository (once)",
                       description="Make Ed25519 keys for the root, targets, snapshot and timestamp roles and an "
                       "empty repository; prints the root.json that goes into the kiosk image.")
    k.add_argument("--keys", required=True, type=Path, metavar="DIR", help="where the private keys go (offline!)")
    k.add_argument("--repo", required=True, type=Path, metavar="DIR", help="the repository folder to create")
    for role, n in (("root", 1), ("targets", 1)):
        k.add_argument(f"--{role}-keys", type=_count, default=n, metavar="N", help=f"{role} keys to make ({n})")
        k.add_argument(f"--{role}-threshold", type=_count, default=n, metavar="N",
                       help=f"signatures a {role} change needs ({n})")
    k.set_defaults(func=cmd_keys)

    u = sub.add_parser("publish", help="add a model (ONNX + card + canary photos) as the current one",
                       description="Sign a model into the repository as its next version. The canary photos are "
                       "chosen from --canary (class folders): ones this model answers right, confidently.")
    u.add_argument("--repo", required=True, type=Path, metavar="DIR")
    u.add_argument("--keys", required=True, type=Path, action="append", metavar="DIR",
                   help="a folder of private keys (repeat for each custodian's)")
    u.add_argument("--model", required=True, type=Path, metavar="ONNX", help="its card lies beside it")
    u.add_argument("--canary", required=True, type=Path, metavar="DIR", help="photos in <class>/ folders")
    u.add_argument("--per-class", type=_count, default=2, metavar="N", help="canary photos per class (2)")
    u.set_defaults(func=cmd_publish)

    r = sub.add_parser("refresh", help="re-sign snapshot and timestamp before they expire (weekly: cron)",
                       description="New snapshot and timestamp versions. Kiosks refuse a repository whose timestamp "
                       "has expired (a frozen mirror), so run this at least weekly.")
    r.add_argument("--repo", required=True, type=Path, metavar="DIR")
    r.add_argument("--keys", required=True, type=Path, action="append", metavar="DIR")
    r.set_defaults(func=cmd_refresh)

    for name, func, help in (
        ("update", cmd_update, "fetch, verify, canary and switch to the repository's current model"),
        ("status", cmd_status, "the active, previous and factory models"),
        ("rollback", cmd_rollback, "go back to the previous model (or the factory model)"),
    ):
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
        if name == "update":
            c.add_argument("--from", dest="source", metavar="URL|DIR", help="the repository (default: updates.source)")
        if name == "status":
            c.add_argument("--json", action="store_true")
        c.set_defaults(func=func)


def _config(args):
    from kiosk.appliance.configpath import resolve_config_arg
    from kiosk.config import load_config

    return load_config(resolve_config_arg(getattr(args, "config", None)), check_model=False)


def cmd_keys(args) -> int:
    from kiosk.updates.repository import _passphrase, make_keys

    counts = {"root": args.root_keys, "targets": args.targets_keys, "snapshot": 1, "timestamp": 1}
    thresholds = {"root": args.root_threshold, "targets": args.targets_threshold, "snapshot": 1, "timestamp": 1}
    root = make_keys(args.keys, args.repo, counts, thresholds, passphrase=_passphrase(confirm=True))
    print(f"keys in {args.keys} (keep root and targets keys offline), repository in {args.repo}")
    print(f"trusted root for the image: {root}  (copy it to the kiosk; updates.trusted_root)")
    return 0


def cmd_publish(args) -> int:
    from kiosk.classifier import OnnxClassifier
    from kiosk.errors import ModelError
    from kiosk.updates.canary import choose_canary
    from kiosk.updates.repository import Keyring, Repository, publish

    try:
        clf = OnnxClassifier(args.model, threads=2)  # every load-time check the kiosk makes
    except ModelError as e:
        raise UpdateError(f"--model {args.model}: [{e.code}] {e}", code="E705") from None
    try:
        try:
            canary = choose_canary(clf, args.canary, per_class=args.per_class)
        except FileNotFoundError as e:
            raise UpdateError(f"--canary: {e}", code="E705") from None
    finally:
        clf.close()
    if not canary:
        raise UpdateError(f"--canary {args.canary}: the model answers none of its photos confidently", code="E705")
    repo = Repository(args.repo, Keyring.load(args.keys))
    manifest = publish(repo, args.model, canary)
    print(f"published {manifest.label} to {args.repo} with {len(canary)} canary photos")
    return 0


def cmd_refresh(args) -> int:
    from kiosk.updates.repository import Keyring, Repository

    version = Repository(args.repo, Keyring.load(args.keys)).commit()
    print(f"{args.repo}: timestamp version {version}, valid for 7 days")
    return 0


def cmd_update(args) -> int:
    from kiosk.main import model_loader
    from kiosk.updates.install import update
    from kiosk.updates.store import ModelStore

    cfg = _config(args)
    source = args.source or cfg.updates.source
    if not source:
        raise UpdateError("no update source: give --from URL|DIR or set updates.source", code="E705")
    if not cfg.updates.trusted_root:
        raise UpdateError("updates.trusted_root is not set: the image needs the repository's root.json "
                          "(made by `kiosk model keys`)", code="E705")
    outcome = update(ModelStore.for_config(cfg), source, cfg.resolve(cfg.updates.trusted_root), model_loader(cfg))
    print(outcome.message)
    return 0


def cmd_status(args) -> int:
    from kiosk.updates.store import ModelStore

    status = ModelStore.for_config(_config(args)).status()
    if args.json:
        print(json.dumps(status, indent=1))
        return 0

    def line(d):
        if d is None:
            return "none"
        if d.get("factory"):
            return f"factory ({d['model']})"
        return f"{d['name']} v{d['version']} ({d['model']}, published {d['published'] or '?'})"

    print(f"active:   {line(status['active'])}")
    print(f"previous: {line(status['previous'])}")
    print(f"factory:  {status['factory']['model']}")
    for version, why in status["rejected"].items():
        print(f"refused:  {version}: {why}")
    return 0


def cmd_rollback(args) -> int:
    from kiosk.updates.store import ModelStore

    store = ModelStore.for_config(_config(args))
    if store.installed("active") is None:
        print("the factory model is active: nothing to roll back to", file=sys.stderr)
        return 1
    with store.locked():
        back = store.rollback("rolled back by hand (kiosk model rollback)")
    print(f"active: {back.manifest.label if back else 'the factory model'}; the running kiosk switches "
          f"between two items")
    return 0


__all__ = ["register"]
