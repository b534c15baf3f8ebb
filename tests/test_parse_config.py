"""Config precedence (defaults < JSON < flags < -o), booleans and errors."""
import json

import pytest

from parse_config import complete_config, parse_args
from utils.config_schema import DEFAULTS
from utils.errors import ConfigError


def write(tmp_path, data):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_defaults_then_json_then_flags_then_overrides(tmp_path):
    path = write(tmp_path, {"optimizer": {"args": {"lr": 0.1}}, "seed": 7,
                            "train_loss": {"args": {"lr_u": 2}}})
    config, _, _ = parse_args(["-c", path, "--lr", "0.05", "-o", "train_loss.args.lr_u=3", "--bs", "64"])
    assert config["optimizer"]["args"]["lr"] == 0.05          # flag beats JSON
    assert config["seed"] == 7                                  # JSON beats default
    assert config["train_loss"]["args"]["lr_u"] == 3            # -o beats JSON
    assert config["data_loader"]["batch_size"] == 64
    assert config["optimizer"]["args"]["momentum"] == DEFAULTS["optimizer"]["args"]["momentum"]


def test_official_flags_map_to_config_keys():
    config, run_dir, resume = parse_args([
        "-c", "config_cifar100.json", "--lr_u", "0.1", "--lr_v", "100", "--percent", "0.4",
        "--name", "CIFAR100", "--asym", "True", "--std", "1e-9", "--consist", "0.5", "--balance", "0.2",
        "--epochs", "3", "--seed", "5", "--data_dir", "somewhere"])
    args = config["train_loss"]["args"]
    assert (args["lr_u"], args["lr_v"], args["init_std"]) == (0.1, 100.0, 1e-9)
    assert (args["ratio_consistency"], args["ratio_balance"]) == (0.5, 0.2)
    assert config["noise"] == {**config["noise"], "type": "asym", "rate": 0.4}
    assert (config["trainer"]["epochs"], config["seed"], config["data_loader"]["data_dir"]) == (3, 5, "somewhere")
    assert resume is None
    parts = run_dir.split("/")
    assert parts[-2] == "CIFAR100" and parts[-1].startswith("cifar100_asym40_")


@pytest.mark.parametrize("text, expected", [("False", "sym"), ("false", "sym"), ("0", "sym"), ("True", "asym")])
def test_asym_flag_parses_booleans(tmp_path, text, expected):
    path = write(tmp_path, {"noise": {"type": "asym"}})
    config, _, _ = parse_args(["-c", path, "--asym", text])
    assert config["noise"]["type"] == expected


def test_instance_flag_selects_instance_noise():
    config, _, _ = parse_args(["-c", "config_cifar10.json", "--instance", "True", "--percent", "0.4"])
    assert config["noise"]["type"] == "instance" and config["noise"]["rate"] == 0.4


def test_override_values_parse_as_json_and_args_blocks_accept_new_keys():
    config, _, _ = parse_args(["-c", "config_cifar10.json", "-o", "trainer.tensorboard=false",
                               "-o", "optimizer.args.nesterov=true", "-o", "trainer.amp=off"])
    assert config["trainer"]["tensorboard"] is False
    assert config["optimizer"]["args"]["nesterov"] is True
    assert config["trainer"]["amp"] == "off"
    assert config["data_loader"]["eval_batch_size"] == "auto"
    config, _, _ = parse_args(["-c", "config_cifar10.json", "-o", "data_loader.eval_batch_size=256"])
    assert config["data_loader"]["eval_batch_size"] == 256


@pytest.mark.parametrize("argv, fragment", [
    (["-c", "config_cifar10.json", "-o", "trainer.epoch=3"], "trainer.epoch"),
    (["-c", "config_cifar10.json", "-o", "nonsense"], "KEY.PATH=VALUE"),
    (["-c", "config_cifar10.json", "--percent", "1.5"], "noise.rate"),
    (["-c", "config_cifar10.json", "--asym", "maybe"], "--asym"),
    (["-c", "missing.json"], "missing.json"),
    (["-c", "config_cifar10.json", "-o", "arch.type=VGG"], "arch.type"),
    (["-c", "config_cifar10.json", "-o", "noise.type=bogus"], "noise.type"),
    (["-c", "config_cifar10.json", "-o", "optimizer.type=Foo"], "optimizer.type"),
    (["-c", "config_cifar10.json", "-o", "data_loader.eval_batch_size=\"big\""], "eval_batch_size' must be \"auto\""),
    (["-c", "config_cifar10.json", "-o", "data_loader.eval_batch_size=0"], "eval_batch_size' must be >= 1"),
    ([], "-c"),
])
def test_bad_input_raises_config_error_naming_the_problem(argv, fragment):
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_all_problems_are_reported_at_once(tmp_path):
    path = write(tmp_path, {"noise": {"rate": 2}, "trainer": {"epochs": 0}, "data_loader": {"batch_size": "x"}})
    with pytest.raises(ConfigError) as err:
        parse_args(["-c", path])
    for key in ("noise.rate", "trainer.epochs", "data_loader.batch_size"):
        assert key in str(err.value)


def test_unknown_json_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'trainer.epohcs'"):
        parse_args(["-c", write(tmp_path, {"trainer": {"epohcs": 3}})])


def test_a_stored_config_gets_the_defaults_of_keys_added_since_and_is_validated():
    stored = json.load(open("config_cifar10.json"))
    del stored["trainer"]["channels_last"]                          # as if saved before the key existed
    assert complete_config(stored)["trainer"]["channels_last"] == DEFAULTS["trainer"]["channels_last"]
    stored["trainer"]["epochs"] = 0
    with pytest.raises(ConfigError, match="'trainer.epochs' must be >= 1"):
        complete_config(stored)
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        complete_config({"bogus": 1})


def test_a_resume_may_change_where_and_how_but_not_what_is_trained(tmp_path):
    import copy
    from parse_config import check_resume_changes
    stored = {"seed": 5, "optimizer": {"args": {"lr": 0.1}}, "trainer": {"epochs": 10}}
    config = complete_config(copy.deepcopy(stored))
    config["data_loader"]["data_dir"] = "elsewhere/"
    config["trainer"].update(amp="off", progress_bar=False, eval_every=5)
    config["noise"]["file"] = "moved/CIFAR-10_human.pt"
    check_resume_changes(stored, config, "ckpt.pth", 3)                 # nothing refused
    config["trainer"]["epochs"], config["optimizer"]["args"]["nesterov"] = 20, True
    with pytest.raises(ConfigError) as err:
        check_resume_changes(stored, config, "ckpt.pth", 3)
    assert str(err.value) == ("resuming ckpt.pth: a resumed run keeps the settings it was trained with, but this "
                              "changes optimizer.args.nesterov null -> true, trainer.epochs 10 -> 20; start a new "
                              "run (-c) to train with them")


def test_configs_written_before_the_official_identity_shortcut_keep_the_input_one(tmp_path):
    from trainer.checkpoint import save_atomic
    old = {"arch": {"type": "PreActResNet18", "args": {"width": 8}}}       # names no identity shortcut
    assert complete_config(old)["arch"]["args"]["identity_shortcut"] == "input"
    fresh, _, _ = parse_args(["-c", write(tmp_path, old)])
    assert fresh["arch"]["args"] == {"width": 8, "identity_shortcut": "preactivated"}   # written out in config.json
    save_atomic({"epoch": 1, "config": old}, str(tmp_path / "old.pth"))
    resumed, _, _ = parse_args(["-r", str(tmp_path / "old.pth")])          # no change refused: it is the same network
    assert resumed["arch"]["args"]["identity_shortcut"] == "input"
    with pytest.raises(ConfigError, match='arch.args.identity_shortcut "input" -> "preactivated"'):
        parse_args(["-r", str(tmp_path / "old.pth"), "-o", "arch.args.identity_shortcut=preactivated"])
    assert complete_config({"arch": {"type": "ResNet34"}})["arch"]["args"] == {"width": 64}   # post-activation


def test_a_resume_may_point_at_a_moved_cifar_n_file(tmp_path):
    from trainer.checkpoint import save_atomic
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "CIFAR-10_human.pt").write_bytes(b"moved here")
    stored = complete_config({"noise": {"type": "human", "file": None}})
    stored["noise"]["file"] = str(tmp_path / "old" / "CIFAR-10_human.pt")      # no longer there
    save_atomic({"epoch": 1, "config": stored}, str(tmp_path / "run.pth"))
    config, _, _ = parse_args(["-r", str(tmp_path / "run.pth"), "-o", f"noise.file={tmp_path}/new/CIFAR-10_human.pt"])
    assert config["noise"]["file"] == f"{tmp_path}/new/CIFAR-10_human.pt"


@pytest.mark.parametrize("scheduler, extendable", [
    ({"type": "CosineAnnealingLR", "args": {"eta_min": 0.0}}, False),           # T_max = epochs: the curve would change
    ({"type": "CosineAnnealingLR", "args": {"eta_min": 0.0, "T_max": 300}}, True),
    ({"type": "MultiStepLR", "args": {"milestones": [5], "gamma": 0.1}}, True),
    ({"type": "none", "args": {}}, True)])
def test_a_resume_may_add_epochs_only_when_the_schedule_does_not_follow_them(tmp_path, scheduler, extendable):
    from trainer.checkpoint import save_atomic
    stored = complete_config({"lr_scheduler": scheduler, "trainer": {"epochs": 2}})
    save_atomic({"epoch": 2, "config": stored}, str(tmp_path / "run.pth"))
    argv = ["-r", str(tmp_path / "run.pth"), "--epochs", "6"]
    if extendable:
        assert parse_args(argv)[0]["trainer"]["epochs"] == 6
    else:
        with pytest.raises(ConfigError, match="changes trainer.epochs 2 -> 6"):
            parse_args(argv)


def test_another_optimizer_or_scheduler_type_takes_only_its_own_args(tmp_path):
    path = write(tmp_path, {"optimizer": {"type": "Adam", "args": {"lr": 0.001}}})
    assert parse_args(["-c", path])[0]["optimizer"] == {"type": "Adam", "args": {"lr": 0.001}}   # no SGD momentum
    for argv in (["-o", "optimizer.type=AdamW", "--lr", "0.003"], ["--lr", "0.003", "-o", "optimizer.type=AdamW"]):
        optimizer = parse_args(["-c", "config_cifar10.json", *argv])[0]["optimizer"]
        assert optimizer == {"type": "AdamW", "args": {"lr": 0.003}}
    config, _, _ = parse_args(["-c", "config_cifar10.json", "-o", "lr_scheduler.args.milestones=[5]",
                               "-o", "lr_scheduler.type=MultiStepLR"])
    assert config["lr_scheduler"] == {"type": "MultiStepLR", "args": {"milestones": [5]}}   # no cosine eta_min
    same, _, _ = parse_args(["-c", "config_cifar10.json", "-o", "optimizer.type=SGD"])   # the same type: its args
    assert same["optimizer"]["args"] == {"lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4}
    assert complete_config({"optimizer": {"type": "Adam", "args": {"lr": 0.001}}})["optimizer"]["args"] == {"lr": 0.001}


def test_a_loss_type_change_in_json_keeps_the_default_loss_args(tmp_path):
    path = write(tmp_path, {"train_loss": {"type": "cross_entropy"}})
    config, _, _ = parse_args(["-c", path, "-o", "train_loss.type=sop"])     # and back: SOP needs all of them
    assert config["train_loss"]["args"] == DEFAULTS["train_loss"]["args"]
