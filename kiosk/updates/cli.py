"""``kiosk model ...``: the publisher's commands (keys, publish, refresh) and the kiosk's (update, status, rollback).

Every refusal is an ``UpdateError`` with its code; ``kiosk.cli.main`` prints
it as ``error [E70x]: ...`` and exits 1, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import sys
from pathlib import Path

from kiosk.errors import UpdateError


def os_error(e: OSError) -> UpdateError:
    """A file-system refusal in words a technician acts on, with its code."""
    where = f" ({e.filename})" if e.filename else ""
    if e.errno in (errno.EACCES, errno.EPERM):
        return UpdateError(f"permission denied{where}: run it with sudo", code="E705")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return UpdateError(f"the data partition cannot take it{where}: {e.strerror}", code="E704")
    return UpdateError(f"{e.strerror or e}{where}", code="E700")


def coded(fn):
    """Every model command: an OSError is a coded one-line error, never a traceback."""
    @functools.wraps(fn)
    def run(args) -> int:
        try:
            return fn(args)
        except OSError as e:
            raise os_error(e) from None
    return run


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
    k.set_defaults(func=coded(cmd_keys))

    u = sub.add_parser("publish", help="add a model (ONNX + card + canary photos) as the current one",
                       description="Sign a model into the repository as its next version. The canary photos are "
                       "chosen from --canary (class folders): ones this model answers right, confidently.")
    u.add_argument("--repo", required=True, type=Path, metavar="DIR")
    u.add_argument("--keys", required=True, type=Path, action="append", metavar="DIR",
                   help="a folder of private keys (repeat for each custodian's)")
    u.add_argument("--model", required=True, type=Path, metavar="ONNX", help="its card lies beside it")
    u.add_argument("--canary", required=True, type=Path, metavar="DIR", help="photos in <class>/ folders")
    u.add_argument("--per-class", type=_count, default=2, metavar="N", help="canary photos per class (2)")
    u.set_defaults(func=coded(cmd_publish))

    r = sub.add_parser("refresh", help="re-sign snapshot and timestamp before they expire (weekly: cron)",
                       description="New snapshot and timestamp versions. Kiosks refuse a repository whose timestamp "
                       "has expired (a frozen mirror), so run this at least weekly.")
    r.add_argument("--repo", required=True, type=Path, metavar="DIR")
    r.add_argument("--keys", required=True, type=Path, action="append", metavar="DIR")
    r.set_defaults(func=coded(cmd_refresh))

    n = sub.add_parser("renew-root", help="sign root version N+1 with a new expiry (root keys, yearly)",
                       description="Root expires after a year: kiosks then refuse every update. Renew it with the "
                       "root keys before then; kiosks take the new root with their next update.")
    n.add_argument("--repo", required=True, type=Path, metavar="DIR")
    n.add_argument("--keys", required=True, type=Path, action="append", metavar="DIR")
    n.add_argument("--days", type=int, default=365, choices=range(30, 3651), metavar="DAYS")
    n.set_defaults(func=coded(cmd_renew_root))

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
        c.set_defaults(func=coded(func))


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


RENEW_WITHIN_DAYS = 60  # refresh re-signs targets too once they expire within this


def cmd_refresh(args) -> int:
    import datetime as dt

    from kiosk.updates.repository import Keyring, Repository, _now

    repo = Repository(args.repo, Keyring.load(args.keys))
    targets = repo.load("targets")
    soon = targets.signed.expires - _now() < dt.timedelta(days=RENEW_WITHIN_DAYS)
    if soon and not repo.keyring.signers["targets"]:
        print(f"warning: targets expire {targets.signed.expires:%Y-%m-%d}: give the targets keys too (--keys)",
              file=sys.stderr)
    version = repo.commit(targets if soon and repo.keyring.signers["targets"] else None)
    root = repo.root().signed
    if root.expires - _now() < dt.timedelta(days=RENEW_WITHIN_DAYS):
        print(f"warning: root expires {root.expires:%Y-%m-%d}: `kiosk model renew-root` with the root keys",
              file=sys.stderr)
    print(f"{args.repo}: timestamp version {version}, valid for 7 days" + ("; targets re-signed" if soon else ""))
    return 0


def cmd_renew_root(args) -> int:
    from kiosk.updates.repository import Keyring, Repository

    version = Repository(args.repo, Keyring.load(args.keys)).renew_root(args.days)
    print(f"{args.repo}: root version {version}, valid for {args.days} days (kiosks take it with their next update)")
    return 0


def cmd_update(args) -> int:
    from kiosk.main import model_loader
    from kiosk.updates.install import update
    from kiosk.updates.store import ModelStore, as_data_owner

    cfg = _config(args)
    source = args.source or cfg.updates.source
    if not source:
        raise UpdateError("no update source: give --from URL|DIR or set updates.source", code="E705")
    if not cfg.updates.trusted_root:
        raise UpdateError("updates.trusted_root is not set: the image needs the repository's root.json "
                          "(made by `kiosk model keys`)", code="E705")
    store = ModelStore.for_config(cfg)
    trusted = cfg.resolve(cfg.updates.trusted_root)

    def work() -> int:
        print(update(store, source, trusted, model_loader(cfg)).message)
        return 0

    return as_data_owner(cfg.data_dir, work)  # as root: done as the data partition's owner (the kiosk user)


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
    from kiosk.updates.store import ModelStore, as_data_owner

    cfg = _config(args)
    store = ModelStore.for_config(cfg)
    if store.installed("active") is None:
        print("the factory model is active: nothing to roll back to", file=sys.stderr)
        return 1

    def work() -> int:
        with store.locked():
            back = store.rollback("rolled back by hand (kiosk model rollback)")
        print(f"active: {back.manifest.label if back else 'the factory model'}; the running kiosk switches "
              f"between two items")
        return 0

    return as_data_owner(cfg.data_dir, work)


__all__ = ["register"]
