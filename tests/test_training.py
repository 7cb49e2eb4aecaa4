"""Training recipe bookkeeping (needs the train extra; skipped without PyTorch)."""

from __future__ import annotations

import shlex

import pytest

pytest.importorskip("torch")

from kiosk.training.train import build_parser, train_command  # noqa: E402


def test_train_command_reproduces_the_recorded_recipe():
    """The card's command, parsed again, gives back the run's arguments."""
    recipe = vars(build_parser().parse_args(["--out", "build/x y", "--epochs", "30", "--clean-fraction", "0.25"]))
    cmd = train_command(recipe)
    assert cmd.startswith("kiosk train --data ") and "--clean-fraction 0.25" in cmd and "--lr" not in cmd
    assert "'build/x y'" in cmd  # quoted for the shell
    assert vars(build_parser().parse_args(shlex.split(cmd)[2:])) == recipe


def test_precision_follows_the_cpu_flags():
    from kiosk.model.cpuinfo import _parse, CpuInfo
    from kiosk.training.train import choose_precision

    amx = CpuInfo("x86_64", *_parse("model name : Xeon\nflags : avx2 avx512f avx512_vnni amx_bf16 amx_int8\n"), 2)
    zen3 = CpuInfo("x86_64", *_parse("model name : AMD EPYC\nflags : avx2 fma\n"), 2)
    assert choose_precision("auto", amx)[0] == "bf16"
    assert choose_precision("auto", zen3) == ("fp32-channels-last", "auto: no amx_bf16 on this CPU (bf16 would be emulated)")
    assert choose_precision("fp32", amx)[0] == "fp32-channels-last"
    assert "emulated" in choose_precision("bf16", zen3)[1]  # honoured, but the log says what it costs
    assert zen3.int8_path == "x86-avx2" and amx.int8_path == "x86-amx"
    assert amx.kernel_flags == ["avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"]


def test_wise_ft_interpolates_floats_and_keeps_the_tuned_counters():
    import torch

    from kiosk.training.robust import interpolate

    probe = {"w": torch.zeros(3), "bn.running_var": torch.ones(2), "bn.num_batches_tracked": torch.tensor(0)}
    tuned = {"w": torch.full((3,), 2.0), "bn.running_var": torch.full((2,), 3.0),
             "bn.num_batches_tracked": torch.tensor(700)}
    mix = interpolate(probe, tuned, 0.25)
    assert torch.allclose(mix["w"], torch.full((3,), 0.5)) and torch.allclose(mix["bn.running_var"], torch.full((2,), 1.5))
    assert int(mix["bn.num_batches_tracked"]) == 700
    assert torch.equal(interpolate(probe, tuned, 0.0)["w"], probe["w"])
    assert torch.equal(interpolate(probe, tuned, 1.0)["w"], tuned["w"])


def test_a_soup_averages_floats_and_refuses_checkpoints_of_another_size(tmp_path, capsys, monkeypatch):
    """benchmarks/soup_check.py: the soup is the mean of the runs' float tensors (BN statistics too); runs
    trained at another input size (or backbone) do not average into one model."""
    import torch

    from kiosk.training.robust import average
    from tests.conftest import REPO

    a = {"w": torch.zeros(3), "bn.running_var": torch.ones(2), "bn.num_batches_tracked": torch.tensor(5)}
    b = {"w": torch.full((3,), 3.0), "bn.running_var": torch.full((2,), 2.0), "bn.num_batches_tracked": torch.tensor(9)}
    c = {"w": torch.full((3,), 6.0), "bn.running_var": torch.full((2,), 6.0), "bn.num_batches_tracked": torch.tensor(4)}
    soup = average([a, b, c])
    assert torch.allclose(soup["w"], torch.full((3,), 3.0)) and torch.allclose(soup["bn.running_var"], torch.full((2,), 3.0))
    assert int(soup["bn.num_batches_tracked"]) == 5 and soup["bn.num_batches_tracked"].dtype == torch.int64  # not 6
    assert torch.equal(average([b])["w"], b["w"])
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import soup_check

    classes = ["glass", "paper"]
    for name, size in (("a.pt", 224), ("b.pt", 256)):
        torch.save({"model": {}, "classes": classes, "args": {"size": size}}, tmp_path / name)
    with pytest.raises(SystemExit) as e:
        soup_check.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt")])
    assert e.value.code == 2 and "differ in backbone, input size or classes" in capsys.readouterr().err


def test_linear_probe_fits_separable_features():
    import torch

    from kiosk.training.robust import class_weights_for, fit_probe, top1

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 3
    y = torch.arange(300) % 3
    x = centres[y] + torch.randn(300, 16, generator=g)
    w = torch.tensor(class_weights_for(y.tolist(), 3), dtype=torch.float32)
    head = fit_probe(x, y, 3, 1e-3, w)
    assert top1(head, x, y) > 0.95
    assert top1(torch.nn.Linear(16, 3), x, y) < 0.8  # an unfitted head does not


def test_mix_batch_mixes_images_and_labels_by_the_same_share():
    import numpy as np
    import torch

    from kiosk.training.robust import mix_batch

    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 16, 16).contiguous()
    y = torch.arange(8)
    same = mix_batch(x, y, 0.0, np.random.default_rng(0))
    assert same[0] is x and same[2] == 1.0  # --mix 0: the batch as it was
    kinds = set()
    for seed in range(40):
        mixed, other, lam = mix_batch(x, y, 1.0, np.random.default_rng(seed))
        assert sorted(other.tolist()) == list(range(8)) and 0.0 <= lam <= 1.0  # a permutation of the labels
        # every image is its own and its partner's in the share lam says (pixel values are the labels)
        moved = y != other
        share = (mixed[moved] - other[moved].view(-1, 1, 1, 1)) / (y - other)[moved].view(-1, 1, 1, 1)
        if (mixed[moved] == mixed[moved][:, :1, :1, :1]).all() and lam not in (0.0, 1.0):
            kinds.add("mixup")
            assert torch.allclose(share, torch.full_like(share, lam), atol=1e-5)
        else:
            kinds.add("cutmix")  # lam is the share of each image's own pixels
            own = (mixed[moved] == y[moved].view(-1, 1, 1, 1).float()).float().mean()
            assert abs(float(own) - lam) < 1e-6
    assert kinds == {"mixup", "cutmix"}
    assert mix_batch(x, y, 1.0, np.random.default_rng(3))[2] == mix_batch(x, y, 1.0, np.random.default_rng(3))[2]


def test_wise_and_probe_flags_are_checked(tmp_path, capsys):
    from kiosk.training.train import main

    for argv, why in ((["--extra-data", "", "--lp-views", "0", "--wise", "0.5"], "give --lp-views too"),
                      (["--extra-data", "", "--lp-views", "1", "--wise", "1.5"], "between 0 and 1"),
                      (["--extra-data", "", "--lp-views", "1", "--wise", "half"], "must be numbers"),
                      (["--extra-data", str(tmp_path / "nowhere")], "no train/ folder there"),
                      (["--extra-data", "", "--held", "1.5"], "--held must be between 0 and 1"),
                      (["--extra-data", "", "--mix", "-0.1"], "--mix must be between 0 and 1"),
                      (["--extra-data", "", "--frozen-blocks", "16"], "EfficientNet-Lite0 has 16 blocks"),
                      (["--extra-data", "", "--backbone", "lite2", "--frozen-blocks", "21"],
                       "EfficientNet-Lite2 has 21 blocks")):
        with pytest.raises(SystemExit) as e:
            main(["--data", "/nonexistent", "--out", str(tmp_path / "out"), *argv])
        assert e.value.code == 2 and why in capsys.readouterr().err, argv  # refused for its own reason


def test_the_cross_copy_of_val_is_cut_before_its_loader_forks(tmp_path, monkeypatch):
    """The composited val set is read by forked workers every pass: its GrabCut cuts must already be in the
    parent's cache (val itself is built with train=False, so its own constructor does not cut)."""
    import cv2
    import numpy as np

    from kiosk.model import degrade
    from kiosk.preprocess import InputSpec
    from kiosk.training.train import FolderDataset

    rng = np.random.default_rng(0)
    for k, cls in enumerate(("glass", "paper")):
        img = np.full((192, 256, 3), 225, np.uint8)
        img[50:140, 90:150] = (60, 130, 60) if k == 0 else (200, 60, 40)
        img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "a.png"), img[..., ::-1])
    monkeypatch.setattr(degrade, "_MASKS", {})
    val = FolderDataset(tmp_path, InputSpec(), train=False)
    assert degrade._MASKS == {}  # plain val needs no cut
    cross = val.cross_copy()
    assert cross.cross and not val.cross and len(degrade._MASKS) == 2

    def no_cut(rgb):
        raise AssertionError("GrabCut ran again in the loader")

    monkeypatch.setattr(degrade, "_cut", no_cut)
    for i in range(len(cross)):
        cross[i]


def test_a_lite2_checkpoint_exports_as_lite2(tmp_path):
    """The backbone a run trained travels in its checkpoint: export rebuilds that network, not Lite0."""
    import numpy as np
    import torch

    from kiosk.model.sessions import make_session, run_batch
    from kiosk.training.export import architecture, export_fp32, model_name
    from kiosk.training.train import BACKBONES, build_model

    model = build_model(6, "lite2")
    assert len(model._blocks) == BACKBONES["lite2"][3] == 21 and model._fc.out_features == 6
    classes = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
    torch.save({"model": model.state_dict(), "classes": classes, "args": {"backbone": "lite2"}}, tmp_path / "best.pt")
    got_classes, ref = export_fp32(tmp_path / "best.pt", tmp_path / "m.onnx")
    out = run_batch(make_session(tmp_path / "m.onnx", 1), np.zeros((1, 3, 224, 224), np.float32))
    assert got_classes == classes and np.abs(out - ref).max() < 1e-3
    assert model_name("lite2") == "kiosk-lite2" and architecture("lite2").startswith("EfficientNet-Lite2 ")


def test_only_photos_a_view_cuts_are_cut(tmp_path, monkeypatch):
    """GrabCut runs up front for the photos composited or held views will read, and for no others."""
    import cv2
    import numpy as np

    from kiosk.model import degrade
    from kiosk.preprocess import InputSpec
    from kiosk.training.train import FolderDataset

    for k, cls in enumerate(("glass", "paper")):
        img = np.full((96, 128, 3), 225, np.uint8)
        img[30:70, 40:80] = (60, 130, 60) if k == 0 else (200, 60, 40)
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "a.png"), img[..., ::-1])
    monkeypatch.setattr(degrade, "_MASKS", {})
    plain = FolderDataset(tmp_path, InputSpec(), train=True)  # --composite 0 --held 0: no view reads a cut
    extra = FolderDataset(tmp_path, InputSpec(), train=True)
    assert degrade._MASKS == {}
    plain.extend(extra)
    assert degrade._MASKS == {}  # composite share 0 for both sources, nothing held
    held = FolderDataset(tmp_path, InputSpec(), train=True, held=0.3)
    assert len(degrade._MASKS) == 2
    monkeypatch.setattr(degrade, "_MASKS", {})
    held.extend(FolderDataset(tmp_path, InputSpec(), train=True))  # the extra source's photos are held up too
    assert len(degrade._MASKS) == 2  # same pictures: their cuts made once, for both sets


def _board_photos(root, classes=("glass", "paper"), per_class=2):
    """Tiny TrashNet-like photos: a coloured item on a pale board, per class folder."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for j in range(per_class):
            img = np.full((96, 128, 3), 225, np.uint8)
            img[30 + 4 * j:70, 40:80] = (60, 130, 60) if k == 0 else (200, 60, 40)
            img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / cls / f"{j}.png"), img[..., ::-1])


def _tiny_run(tmp_path, train=3, val=1, batch=2):
    """Board photos in train/ and val/ and the flags of a one-epoch run on them: (data, out, argv)."""
    data, out = tmp_path / "data", tmp_path / "out"
    _board_photos(data / "train", per_class=train)
    _board_photos(data / "val", per_class=val)
    return data, out, ["--data", str(data), "--extra-data", "", "--out", str(out), "--batch", str(batch),
                       "--epochs", "1", "--lp-views", "0", "--wise", "", "--workers", "0"]


def _train_only_history(path, data, best, **flags):
    """A train-only run's history.json: its recorded args (the parser's, resolved) and its choices."""
    import json

    args = vars(build_parser().parse_args(["--data", str(data), "--extra-data", "", "--out", "ref", *flags.get("argv", [])]))
    args["frozen_blocks"] = 3
    path.write_text(json.dumps({"args": args, "best": best, "history": []}))
    return path


def test_fold_in_refuses_what_it_cannot_reproduce(tmp_path, capsys):
    """--fold-in-val takes the train-only run's recipe and choices; where it cannot, it says which and why."""
    from kiosk.training.train import main

    data = tmp_path / "data"
    base = ["--data", str(data), "--extra-data", "", "--out", str(tmp_path / "out")]
    chosen = {"epoch": 5, "weights": "ema", "wise_alpha": 0.85}
    ref = _train_only_history(tmp_path / "ref.json", data, chosen)
    other_lr = _train_only_history(tmp_path / "lr.json", data, chosen, argv=["--lr", "0.001"])
    late = _train_only_history(tmp_path / "late.json", data, {**chosen, "epoch": 30})
    folded = tmp_path / "folded.json"
    folded.write_text(ref.read_text().replace('"fold_in_val": null', '"fold_in_val": "x.json"'))
    own = tmp_path / "run"
    own.mkdir()
    own_history = _train_only_history(own / "history.json", data, chosen)
    for argv, why in (([], "does not record the probe's strength; give --probe-wd"),
                      (["--fold-in-val", str(other_lr)], "differs from the train-only run's in lr"),
                      # the schedule's length makes "epoch 5" what it was
                      (["--fold-in-val", str(ref), "--probe-wd", "0.01", "--epochs", "6"], "run's in epochs"),
                      (["--fold-in-val", str(late), "--probe-wd", "0.01"], "is not one of its own epochs"),
                      (["--fold-in-val", str(folded), "--probe-wd", "0.01"], "was itself trained on val"),
                      (["--fold-in-val", str(own_history), "--probe-wd", "0.01", "--out", str(own)],
                       "the train-only run's own folder"),
                      (["--fold-in-val", str(tmp_path / "none.json")], "not a training run's history.json")):
        with pytest.raises(SystemExit) as e:
            main([*base, *(argv or ["--fold-in-val", str(ref)])])
        assert e.value.code == 2 and why in capsys.readouterr().err, argv


def test_fold_in_trains_on_val_with_the_train_only_runs_choices(tmp_path):
    """Val's photos join the training set; the run stops at the train-only run's epoch, keeps its weights
    (plain or EMA) and its WiSE-FT mix, and records what it took, for the card."""
    import json

    import torch

    from kiosk.training import robust
    from kiosk.training.train import main

    data = tmp_path / "data"
    _board_photos(data / "train", per_class=3)
    _board_photos(data / "val", per_class=2)
    chosen = {"epoch": 2, "weights": "plain", "wise_alpha": 0.5, "probe": {"weight_decay": 0.001}}
    ref = _train_only_history(tmp_path / "ref.json", data, chosen, argv=["--batch", "4", "--epochs", "3"])
    out = tmp_path / "out"
    assert main(["--data", str(data), "--extra-data", "", "--out", str(out), "--batch", "4", "--epochs", "3",
                 "--fold-in-val", str(ref), "--workers", "0"]) == 0
    h = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in h["history"]] == [1, 2]  # epoch 3 would not be used
    assert "val_top1" not in h["history"][0]  # val is training data: not a figure
    assert h["fold_in"]["images"] == {"train": 6, "val": 4} and h["fold_in"]["epoch"] == 2
    assert h["best"]["wise_alpha"] == 0.5 and h["best"]["probe"]["weight_decay"] == 0.001
    probe, tuned = torch.load(out / "probe.pt", weights_only=False), torch.load(out / "finetuned.pt", weights_only=False)
    best = torch.load(out / "best.pt", weights_only=False)
    assert tuned["best"]["weights"] == "plain" and tuned["best"]["epoch"] == 2
    last = torch.load(out / "last.pt", weights_only=False)  # epoch 2's state: plain and EMA weights
    assert all(torch.equal(tuned["model"][k], last["model"][k]) for k in last["model"])
    assert not all(torch.equal(tuned["model"][k], last["ema"][k]) for k in last["ema"])
    mix = robust.interpolate(probe["model"], tuned["model"], 0.5)
    assert all(torch.equal(best["model"][k], mix[k]) for k in mix)
    assert best["args"]["fold_in_val"] == str(ref)


def test_a_fold_in_export_keeps_the_train_only_card(tmp_path, capsys):
    """Its val figures are in-sample: export asks for the train-only card and refuses one of another run."""
    import json

    from kiosk.training.export import main as export

    data = tmp_path / "data"
    run = tmp_path / "run"
    run.mkdir()
    ref = _train_only_history(tmp_path / "ref.json", data, {"epoch": 1, "weights": "ema"})
    chosen = {"epoch": 1, "weights": "ema"}
    (run / "history.json").write_text(json.dumps({"args": {}, "best": {}, "history": [], "fold_in": {
        "train_only_history": str(ref), "train_only_args": json.loads(ref.read_text())["args"],
        "train_only_best": chosen}}))
    other = tmp_path / "other.json"  # another run's card: its recipe is not the one the fold-in run took
    other.write_text(json.dumps({"training": {"recipe": {"lr": 1.0}, "best_epoch": chosen}, "temperature": 0.9}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "history.json").write_text(json.dumps({"args": {}, "best": {}, "history": []}))
    base = ["--data", str(data), "--out", str(tmp_path / "o"), "--work", str(tmp_path / "w")]
    for argv, why in ((["--checkpoint", str(run / "best.pt")], "give --train-only-card"),
                      (["--checkpoint", str(run / "best.pt"), "--train-only-card", str(other)], "its recipe or its chosen epoch differ"),
                      (["--checkpoint", str(run / "best.pt"), "--train-only-card", str(tmp_path / "no.json")],
                       "not a model card"),
                      (["--checkpoint", str(plain / "best.pt"), "--train-only-card", str(other)],
                       "for a checkpoint trained with kiosk train --fold-in-val"),
                      (["--from-qdq", str(tmp_path / "m.onnx"), "--train-only-card", str(other)],
                       "a re-quantised model keeps its card's train_only")):
        with pytest.raises(SystemExit) as e:
            export([*base, *argv])
        assert e.value.code == 2 and why in capsys.readouterr().err, argv


def test_the_train_only_card_must_be_the_one_the_fold_in_run_took_its_choices_from(tmp_path):
    """Its temperature is kept only where it fits: the same run's card, calibrated with the same mirror."""
    import json

    from kiosk.training.export import train_only_record

    recipe, chosen = {"lr": 0.0006, "epochs": 22}, {"epoch": 13, "weights": "ema", "wise_alpha": 1.0}
    card = {"name": "kiosk-lite0", "sha256": "ab", "temperature": 0.74, "test_time": {"mirror": True},
            "metrics_val": {"int8": {"top1": 0.9}}, "training": {"recipe": recipe, "best_epoch": chosen}}
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    history = {"fold_in": {"train_only_history": "ref.json", "train_only_args": recipe, "train_only_best": chosen}}
    kept = train_only_record(path, history, mirror=True)
    assert kept["temperature"] == 0.74 and kept["metrics_val"] == card["metrics_val"] and kept["card"] == str(path)
    with pytest.raises(ValueError, match="mirror on"):
        train_only_record(path, history, mirror=False)
    other_epoch = {"fold_in": {**history["fold_in"], "train_only_best": {**chosen, "epoch": 12}}}
    with pytest.raises(ValueError, match="chosen epoch differ"):
        train_only_record(path, other_epoch, mirror=True)
    path.write_text(json.dumps({k: v for k, v in card.items() if k != "temperature"}))
    with pytest.raises(ValueError, match="no temperature"):
        train_only_record(path, history, mirror=True)


def test_too_few_photos_for_one_batch_is_refused(tmp_path, capsys):
    """drop_last would make every epoch empty: a clear refusal, not a traceback after the model loads."""
    from kiosk.training.train import main

    _board_photos(tmp_path / "data" / "train", per_class=2)
    _board_photos(tmp_path / "data" / "val", per_class=1)
    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path / "data"), "--extra-data", "", "--out", str(tmp_path / "out"),
              "--lp-views", "0", "--wise", "", "--workers", "0"])
    assert e.value.code == 2 and "4 training photos make no batch of --batch 32" in capsys.readouterr().err


def test_resume_refuses_a_changed_recipe_even_from_a_checkpoint_older_than_the_flag(tmp_path, capsys):
    """A last.pt written before --mix existed was trained unmixed: resuming it with --mix would make a card
    describe a run that never happened; resuming it as it was goes on."""
    import torch

    from kiosk.training.train import main

    data, out = tmp_path / "data", tmp_path / "out"
    _board_photos(data / "train", per_class=3)
    _board_photos(data / "val", per_class=2)
    base = ["--data", str(data), "--extra-data", "", "--out", str(out), "--batch", "4", "--epochs", "1",
            "--lp-views", "0", "--wise", "", "--workers", "0"]
    assert main(base) == 0
    last = torch.load(out / "last.pt", weights_only=False)
    del last["args"]["mix"]  # as a checkpoint from before the flag
    torch.save(last, out / "last.pt")
    with pytest.raises(SystemExit) as e:
        main([*base, "--resume", "--mix", "0.5"])
    assert e.value.code == 2 and "different recipe (mix)" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 0 and "resumed after epoch 1" in capsys.readouterr().out


def test_a_stopped_and_resumed_run_trains_what_the_uninterrupted_run_trains(tmp_path, monkeypatch):
    """Stopped after epoch 1 and resumed, a run must end with the weights of the run that never stopped:
    epoch 2 shuffled as it would have been, not like a fresh start's epoch 1."""
    import torch

    from kiosk.training import train

    data = tmp_path / "data"
    _board_photos(data / "train", per_class=4)
    _board_photos(data / "val", per_class=1)
    base = ["--data", str(data), "--extra-data", "", "--batch", "2", "--epochs", "2", "--lp-views", "0",
            "--wise", "", "--workers", "0"]
    assert train.main([*base, "--out", str(tmp_path / "whole")]) == 0

    real_plot = train.plot_curves

    def stop_after_first_epoch(*a, **k):  # the power goes after epoch 1 is saved
        real_plot(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "plot_curves", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.main([*base, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(train, "plot_curves", real_plot)
    assert train.main([*base, "--out", str(tmp_path / "cut"), "--resume"]) == 0

    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert cut["epoch"] == whole["epoch"] == 2
    assert [r["train_loss"] for r in cut["history"]] == [r["train_loss"] for r in whole["history"]]
    assert all(torch.equal(whole["model"][k], cut["model"][k]) for k in whole["model"])


def test_a_run_trains_and_exports_at_its_size(tmp_path, capsys, monkeypatch):
    """--size is the input training feeds and the run records; export builds the model at it (the card follows)."""
    import json

    import numpy as np

    from kiosk.model.bench import _input_like
    from kiosk.model.sessions import make_session, run_batch
    from kiosk.training import train
    from kiosk.training.export import export_fp32, latency_ms

    data, out, base = _tiny_run(tmp_path, train=3, val=2, batch=4)
    with pytest.raises(SystemExit) as e:
        train.main([*base, "--size", "250"])
    assert e.value.code == 2 and "--size must be a multiple of 32" in capsys.readouterr().err
    shapes = set()
    feed = train.training_input

    def spy(rgb, spec, *a, **k):
        x = feed(rgb, spec, *a, **k)
        shapes.add(x.shape)
        return x

    monkeypatch.setattr(train, "training_input", spy)
    assert train.main([*base, "--size", "160"]) == 0
    assert shapes == {(3, 160, 160)}
    assert json.loads((out / "history.json").read_text())["args"]["size"] == 160
    export_fp32(out / "best.pt", tmp_path / "m.onnx")
    session = make_session(tmp_path / "m.onnx", 1)
    assert session.get_inputs()[0].shape == [1, 3, 160, 160]
    assert run_batch(session, np.zeros((1, 3, 160, 160), np.float32)).shape == (1, 2)
    assert _input_like(session, tmp_path / "m.onnx").shape == (1, 3, 160, 160)  # bench times it at its size
    assert latency_ms(tmp_path / "m.onnx", runs=1, size=160) > 0
    with pytest.raises(SystemExit) as e:  # the size is part of the recipe a resume must keep
        train.main([*base, "--resume", "--size", "192"])
    assert e.value.code == 2 and "different recipe (size)" in capsys.readouterr().err


def test_a_probe_fitted_at_another_size_is_not_reused(tmp_path, capsys):
    """probe.pt lets --resume skip the probe; its features were pooled at one input size, so only that size."""
    from kiosk.training.train import main

    _, _, base = _tiny_run(tmp_path, train=3, val=2, batch=4)
    base += ["--lp-views", "1", "--probe-wd", "0.01"]
    assert main([*base, "--size", "160"]) == 0  # a new run into the same folder finds the probe there
    assert main([*base, "--size", "160"]) == 0 and "linear probe: reused" in capsys.readouterr().out
    assert main([*base, "--size", "192"]) == 0 and "linear probe: reused" not in capsys.readouterr().out


def test_the_distillation_term_is_hintons_soft_target_loss():
    """T^2 KL(softmax(teacher/T) || softmax(student/T)) per view: zero only where the student agrees, and a step
    down its gradient ranks as the teacher does."""
    import torch

    from kiosk.training.distill import distill_loss

    teacher = torch.tensor([[3.0, 0.5, -1.0], [0.0, 2.0, 1.0]])
    student0 = torch.tensor([[0.2, 1.0, 0.0], [1.5, -0.5, 0.3]])
    T = 2.5
    p, log_p, log_q = (torch.softmax(teacher / T, 1), torch.log_softmax(teacher / T, 1),
                       torch.log_softmax(student0 / T, 1))
    assert distill_loss(student0, teacher, T).item() == pytest.approx((T * T * (p * (log_p - log_q)).sum(1).mean()).item())
    assert distill_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(teacher + 5.0, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores shifts
    student = torch.zeros_like(teacher, requires_grad=True)
    before = distill_loss(student, teacher, 2.0)
    before.backward()
    with torch.no_grad():
        stepped = student - 1.0 * student.grad
    assert distill_loss(stepped, teacher, 2.0).item() < before.item()
    assert stepped.argmax(1).tolist() == teacher.argmax(1).tolist()


def test_a_teacher_scores_each_view_the_student_trains_on_and_the_run_records_it(tmp_path, monkeypatch):
    """--teacher: the kiosk model file's logits on the very (mixed) views the student is fed are the soft
    targets, the term weighs --distill of the loss, and the run records the file and the teacher's time."""
    import json

    import numpy as np
    import onnxruntime as ort

    from kiosk.training import distill, export, train
    from tests.conftest import build_tiny_model

    data, out, base = _tiny_run(tmp_path)
    teacher = build_tiny_model(tmp_path / "teacher.onnx", classes=("glass", "paper"))
    seen, terms, fed = [], [], []
    real_logits, real_build = distill.Teacher.logits, train.build_model

    def spy_logits(self, views):
        soft = real_logits(self, views)
        seen.append((views.clone(), soft))
        return soft

    def constant_term(student, soft, temperature):  # 100 on top: the loss shows the weight it was given
        terms.append((soft, temperature, student.grad_fn is not None))
        return student.sum() * 0 + 100.0

    def build_spied(*a, **k):
        model = real_build(*a, **k)
        model.register_forward_pre_hook(lambda m, inp: fed.append(inp[0].detach().clone()) if m.training else None)
        return model

    monkeypatch.setattr(distill.Teacher, "logits", spy_logits)
    monkeypatch.setattr(distill, "distill_loss", constant_term)
    monkeypatch.setattr(train, "build_model", build_spied)
    assert train.main([*base, "--mix", "1", "--teacher", str(teacher), "--distill", "0.7", "--distill-temp", "3"]) == 0
    assert len(seen) == len(terms) == len(fed) == 3  # 6 photos, batches of 2: every step
    session = ort.InferenceSession(str(teacher), providers=["CPUExecutionProvider"])
    for (views, soft), (used, temperature, graded), student_input in zip(seen, terms, fed):
        assert views.shape == (2, 3, 224, 224) and torch_equal(views, student_input)  # the mixed views, as fed
        want = np.concatenate([session.run(None, {"input": v[None].numpy()})[0] for v in views])
        assert np.allclose(soft.numpy(), want, atol=1e-5) and used is soft and temperature == 3.0 and graded
    run = json.loads((out / "history.json").read_text())
    assert 70.0 < run["history"][0]["train_loss"] < 71.0  # 0.7 x 100 + 0.3 x a two-class cross-entropy
    assert run["args"]["teacher"] == str(teacher) and run["args"]["distill"] == 0.7
    digest = json.loads(teacher.with_suffix(".json").read_text())["sha256"]
    assert run["args"]["teacher_sha256"] == run["teacher"]["sha256"] == digest
    assert run["teacher"]["name"] == "tiny-colour-test-model" and run["teacher"]["in_sample"] is False
    assert run["history"][0]["teacher_seconds"] >= 0
    clause = export.teacher_clause(run)  # the card's training.data says whose scores it learned from
    assert "teacher model tiny-colour-test-model" in clause and digest[:12] in clause and "0.7 of the loss" in clause


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and torch.equal(a.contiguous(), b.contiguous())


def test_a_teacher_that_cannot_teach_this_run_is_refused_by_name_before_the_photos_load(tmp_path, capsys, monkeypatch):
    import hashlib
    import json

    from kiosk.classifier import ModelCard
    from kiosk.training import train
    from tests.conftest import build_tiny_model

    data, out, base = _tiny_run(tmp_path, train=2)

    def refused(*flags):
        with pytest.raises(SystemExit) as e:
            train.main([*base, *flags])
        assert e.value.code == 2
        return capsys.readouterr().err

    def with_card(name, **changes):
        path = build_tiny_model(tmp_path / f"{name}.onnx", classes=("glass", "paper"))
        card = json.loads(path.with_suffix(".json").read_text())
        card.pop("sha256")
        ModelCard.write(path, {**card, **changes})
        return path

    small = build_tiny_model(tmp_path / "small.onnx", classes=("glass", "paper"), size=(160, 160))
    swapped = build_tiny_model(tmp_path / "swapped.onnx", classes=("paper", "glass"))
    good = build_tiny_model(tmp_path / "good.onnx", classes=("glass", "paper"))
    real_dataset = train.FolderDataset
    monkeypatch.setattr(train, "FolderDataset", None)  # any refusal below comes before a photo is read
    assert "model file not found" in refused("--teacher", str(tmp_path / "none.onnx"))
    assert "is not this run's (224x224" in refused("--teacher", str(small))
    assert "classes ['paper', 'glass'] are not this run's ['glass', 'paper']" in refused("--teacher", str(swapped))
    assert "a teacher must give logits" in refused("--teacher", str(with_card("probs", output="probabilities")))
    assert "trained on val too" in refused("--teacher", str(with_card("folded", in_sample={"val": "in-sample"})))
    assert "--distill must be above 0" in refused("--teacher", str(good), "--distill", "0")
    assert "--distill-temp must be between" in refused("--teacher", str(good), "--distill-temp", "0")
    assert "give --teacher too" in refused("--distill", "0.5")
    ref = _train_only_history(tmp_path / "ref.json", data, {"epoch": 1, "weights": "ema"},
                              argv=["--teacher", str(good), "--lp-views", "0", "--wise", "", "--distill", "0.5",
                                    "--distill-temp", "2", "--batch", "2", "--epochs", "1"])
    recorded = json.loads(ref.read_text())
    recorded["args"]["teacher_sha256"] = "0" * 64  # the train-only run learned from another file of that name
    ref.write_text(json.dumps(recorded))
    assert "teacher was another file" in refused("--teacher", str(good), "--fold-in-val", str(ref))
    moved = tmp_path / "teachers" / "good.onnx"  # the file under another path, as a clone keeps it
    moved.parent.mkdir()
    for suffix in (".onnx", ".json"):
        moved.with_suffix(suffix).write_bytes(good.with_suffix(suffix).read_bytes())
    assert "teacher was another file" in refused("--teacher", str(moved), "--fold-in-val", str(ref))  # its digest decides
    assert "differs from the train-only run's in teacher" in refused("--fold-in-val", str(ref))  # none at all
    untaught = _train_only_history(tmp_path / "unt.json", data, {"epoch": 1, "weights": "ema"},
                                    argv=["--lp-views", "0", "--wise", "", "--batch", "2", "--epochs", "1"])
    assert "differs from the train-only run's in teacher" in refused("--teacher", str(good), "--fold-in-val", str(untaught))
    monkeypatch.setattr(train, "FolderDataset", real_dataset)
    assert train.main([*base, "--teacher", str(good)]) == 0
    # the same file moved (as a clone keeps it under teachers/): the fold-in runs, the move is not a new recipe
    recorded["args"]["teacher_sha256"] = hashlib.sha256(good.read_bytes()).hexdigest()
    ref.write_text(json.dumps(recorded))
    assert train.main([*base, "--out", str(tmp_path / "folded"), "--teacher", str(moved), "--fold-in-val", str(ref)]) == 0
    assert json.loads((tmp_path / "folded" / "history.json").read_text())["fold_in"]["epoch"] == 1
    assert train.main([*base, "--teacher", str(moved), "--resume", "--epochs", "1"]) == 0  # resumed from the moved file too
    build_tiny_model(tmp_path / "good.onnx", classes=("glass", "paper"), sharpness=2.0)  # another file, same name
    assert "different recipe (teacher_sha256)" in refused("--teacher", str(good), "--resume", "--epochs", "2")
