"""Train a classifier on noisy labels with SOP / SOP+ (or plain cross-entropy).

    python train.py -c config_cifar10.json [--percent 0.4 --asym True ...]
    python train.py -r saved/<name>/<run>/checkpoint-latest.pth

The composition root: parse the config, build the parts, hand them to the
trainer. Input errors end with a one-line message and exit code 2.
"""
import json
import os
import shutil
import sys

import torch

from data_loader.build import build_data
from model.networks import build_arch
from model.sop_params import SampleNoiseParams
from parse_config import parse_args
from trainer.checkpoint import load_checkpoint
from trainer.noise_monitor import NoiseMonitor
from trainer.run_logger import MetricsWriter, close_text_logger, make_text_logger
from trainer.trainer import NonFiniteLoss, Trainer, TrainingInterrupted
from utils.errors import CheckpointError, ConfigError, UserError
from utils.matrix_image import matrix_image
from utils.runtime import resolve_amp, resolve_channels_last, resolve_device
from utils.seed import seed_everything


def build_optimizer(config, model):
    spec = config["optimizer"]
    try:
        return getattr(torch.optim, spec["type"])(model.parameters(), **spec["args"])
    except TypeError as err:
        raise ConfigError(f"optimizer.args: {err}") from None


def build_scheduler(config, optimizer):
    spec = config["lr_scheduler"]
    if spec["type"] == "none":
        return None
    args = dict(spec["args"])
    if spec["type"] == "CosineAnnealingLR":
        args.setdefault("T_max", config["trainer"]["epochs"])
    try:
        return getattr(torch.optim.lr_scheduler, spec["type"])(optimizer, **args)
    except TypeError as err:
        raise ConfigError(f"lr_scheduler.args: {err}") from None


def build_and_train(config, run_dir, resume_path):
    seed_everything(config["seed"])
    device = resolve_device()
    data = build_data(config, device)
    model = build_arch(config["arch"]["type"], data.num_classes, config["arch"]["args"]).to(device)
    trainer_cfg = config["trainer"]
    channels_last = resolve_channels_last(trainer_cfg["channels_last"], device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(model) if trainer_cfg["compile"] else None
    sop = None
    if config["train_loss"]["type"] == "sop":
        args = config["train_loss"]["args"]
        sop = SampleNoiseParams(data.num_train, data.num_classes, args["lr_u"], args["lr_v"], args["init_std"],
                                device=device, generator=torch.Generator().manual_seed(config["seed"]))
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer)
    state = load_checkpoint(resume_path, map_location=device) if resume_path else None
    if state is not None and (state["num_train"] != data.num_train or state["arch"] != config["arch"]["type"]):
        raise CheckpointError(f"{resume_path} was trained with {state['arch']} on {state['num_train']} samples; "
                              f"this config has {config['arch']['type']} on {data.num_train}")

    created = not os.path.isdir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    log = make_text_logger(run_dir)
    metrics, training = None, False
    try:
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        if state is None:
            data.save_labels(run_dir)
        trainer = Trainer(model, optimizer, scheduler, data, config, run_dir, None, log, device,
                          sop_params=sop, amp_dtype=resolve_amp(trainer_cfg["amp"], device),
                          channels_last=channels_last, compiled_model=compiled,
                          callbacks=[NoiseMonitor(data, config["data_loader"]["dataset"], run_dir,
                                                  eval_batch_size=config["data_loader"]["eval_batch_size"])])
        if state is not None:
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError) as err:
                raise CheckpointError(f"{resume_path} does not fit this model: {str(err).splitlines()[0]}") from None
        metrics = MetricsWriter(run_dir, trainer_cfg["tensorboard"], start_epoch=trainer.start_epoch)
        trainer.metrics = metrics
        log.info(f"run directory: {run_dir}")
        log.info(f"device {device} | {config['data_loader']['dataset']} | {data.num_train} training images | "
                 f"noise {config['noise']['type']} rate {config['noise']['rate']} -> realised {data.noise_rate:.4f} "
                 f"| loss {config['train_loss']['type']}")
        if trainer.start_epoch:
            log.info(f"resuming after epoch {trainer.start_epoch} from {resume_path}")
        else:
            metrics.add_image("noise/transition_true", matrix_image(data.transition), 0)
        training = True
        return trainer.fit()
    except BaseException:
        if created and not training:  # setup failed: leave no half-made run directory
            close_text_logger(log)
            if metrics is not None:
                metrics.close()
                metrics = None
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if metrics is not None:
            metrics.close()
        close_text_logger(log)


def main(argv=None):
    try:
        config, run_dir, resume_path = parse_args(argv)
        build_and_train(config, run_dir, resume_path)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
