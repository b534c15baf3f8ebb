"""Train a classifier on noisy labels with SOP / SOP+ (or plain cross-entropy).

    python train.py -c config_cifar10.json [--percent 0.4 --asym True ...]
    python train.py -r saved/<name>/<run>/checkpoint-latest.pth

The composition root: parse the config, build the parts, hand them to the
trainer. Input errors end with a one-line message and exit code 2.
"""
import json
import logging
import os
import shutil
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from data_loader.build import build_data
from model.networks import build_arch
from model.sync_batchnorm import convert_to_global_batchnorm
from model.sop_params import SampleNoiseParams
from parse_config import parse_args
from trainer.checkpoint import check_fits, checkpoint_position, load_checkpoint
from trainer.noise_monitor import NoiseMonitor
from trainer.run_logger import MetricsWriter, close_text_logger, make_text_logger
from trainer.signals import stop_on_signals
from trainer.trainer import NonFiniteLoss, Trainer, TrainingInterrupted
from utils.atomic import atomic_open, remove_stale_temps
from utils.dist import broadcast_object, init_distributed, shutdown_distributed
from utils.errors import CheckpointError, ConfigError, UserError
from utils.matrix_image import matrix_image
from utils.run_dir import claim_new_dir
from utils.runtime import resolve_amp, resolve_channels_last, resolve_device, to_layout
from utils.seed import seed_everything


def build_optimizer(config, model):
    spec = config["optimizer"]
    try:
        return getattr(torch.optim, spec["type"])(model.parameters(), **spec["args"])
    except (TypeError, ValueError) as err:  # ValueError: torch's own range checks
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
    except (TypeError, ValueError) as err:
        raise ConfigError(f"lr_scheduler.args: {err}") from None


def build_model(config, num_classes, device, dist, channels_last):
    """(model, evaluation forward, training forward): the forwards are the model
    compiled when asked, the training one wrapped in DDP when there are several ranks."""
    model = build_arch(config["arch"]["type"], num_classes, config["arch"]["args"]).to(device)
    trainer_cfg = config["trainer"]
    if dist.enabled and trainer_cfg["sync_bn"]:
        model = convert_to_global_batchnorm(model)
    model = to_layout(model, channels_last)
    forward = torch.compile(model) if trainer_cfg["compile"] else model
    train_forward = forward
    if dist.enabled:
        train_forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if trainer_cfg["compile"]:
            train_forward = torch.compile(train_forward)
    return model, forward, train_forward


def check_world_size(config, dist):
    batch_size = config["data_loader"]["batch_size"]
    if batch_size % dist.world_size:
        raise ConfigError(f"data_loader.batch_size {batch_size} is not divisible by the world size "
                          f"{dist.world_size}: it is the global batch, split evenly over the processes")


def noise_description(config, data):
    """The run log's noise part: configured and realised rates, or that the true labels are unknown."""
    noise = config["noise"]
    if data.train_clean is None:
        return "labels as given in the folders (true labels unknown: label_issues.csv, no detection metrics)"
    text = f"noise {noise['type']} rate {noise['rate']} -> realised {data.noise_rate:.4f}"
    if config["data_loader"]["dataset"] == "folder":
        text += " on top of the folders' labels (taken as true)"
    # the realised rate is over the whole training set; a subset or a validation split has its own
    if len(data.label_record["noisy_labels"]) != data.num_train:
        text += f" ({float((data.train_noisy != data.train_clean).float().mean()):.4f} of the training images)"
    return text


def build_and_train(config, run_dir, resume_path, dist, callbacks=()):
    """Build everything and train; ``callbacks`` (trainer callback objects, see Trainer) run after
    the noise monitor, e.g. a benchmark's recorder."""
    check_world_size(config, dist)
    seed_everything(config["seed"])
    device = resolve_device()
    data = build_data(config, device, rank=dist.rank, world_size=dist.world_size)
    trainer_cfg = config["trainer"]
    channels_last = resolve_channels_last(trainer_cfg["channels_last"], device)
    model, forward, train_forward = build_model(config, data.num_classes, device, dist, channels_last)
    sop = None
    if config["train_loss"]["type"] == "sop":
        args = config["train_loss"]["args"]
        sop = SampleNoiseParams(data.num_train, data.num_classes, args["lr_u"], args["lr_v"], args["init_std"],
                                device=device, generator=torch.Generator().manual_seed(config["seed"]))
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer)
    state = load_checkpoint(resume_path, map_location=device) if resume_path else None
    if state is not None:
        check_fits(state, data, config["arch"]["type"], resume_path)
    trainer = Trainer(model, optimizer, scheduler, data, config, run_dir, None, None, device,
                      sop_params=sop, amp_dtype=resolve_amp(trainer_cfg["amp"], device),
                      channels_last=channels_last, compiled_model=forward, train_forward=train_forward, dist=dist,
                      callbacks=[NoiseMonitor(data), *callbacks])
    if state is not None:  # before anything is written: a checkpoint that does not fit changes nothing
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
            detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
            raise CheckpointError(f"{resume_path} does not fit this model: {detail[:200]}") from None
        if dist.is_main:
            remove_stale_temps(run_dir)
    if not dist.is_main:  # rank 0 writes the run directory; the others only train
        trainer.log = logging.getLogger("sop.worker")
        with stop_on_signals(trainer.request_stop):
            return trainer.fit()

    created = state is None   # a resumed run writes into its checkpoint's directory, which exists
    if created:   # a fresh run gets a directory of its own, even if another started this second
        run_dir = trainer.run_dir = claim_new_dir(run_dir)
    log = trainer.log = make_text_logger(run_dir)
    metrics, training = None, False
    try:
        with atomic_open(os.path.join(run_dir, "config.json")) as f:
            json.dump(config, f, indent=2)
        if state is None:
            data.save_labels(run_dir)
        metrics = MetricsWriter(run_dir, trainer_cfg["tensorboard"], start_epoch=trainer.start_epoch)
        trainer.metrics = metrics
        log.info(f"run directory: {run_dir}")
        log.info(f"device {device} | {config['data_loader']['dataset']} | {data.num_train} training images"
                 + (f" ({data.skipped_files} other files skipped)" if data.skipped_files else "") + " | "
                 f"{noise_description(config, data)} | loss {config['train_loss']['type']}"
                 + (f" | world size {dist.world_size}" if dist.enabled else ""))
        if state is not None:
            epochs_done, steps = checkpoint_position(state)
            log.info(f"resuming from {resume_path} after epoch {epochs_done}"
                     + (f" and {steps} steps of epoch {epochs_done + 1}" if steps else ""))
        elif data.transition is not None:
            metrics.add_image("noise/transition_true", matrix_image(data.transition), 0)
        training = True
        with stop_on_signals(trainer.request_stop):  # a stop saves a checkpoint after the current step
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


def main(argv=None, callbacks=()):
    """Exit code of one run; ``callbacks`` as in `build_and_train` (for in-process callers)."""
    dist = init_distributed()   # a no-op without torchrun
    try:
        config, run_dir, resume_path = parse_args(argv)
        run_dir = broadcast_object(run_dir)   # rank 0's name (it holds a timestamp)
        build_and_train(config, run_dir, resume_path, dist, callbacks)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM, or Ctrl-C before training started
        print("aborted; the last checkpoint written (if any) is intact", file=sys.stderr)
        return 130
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
