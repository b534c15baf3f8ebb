"""The training loop: epochs, evaluation, checkpoints, logging, resume."""
import itertools
import json
import os
import time

import torch
from tqdm import tqdm

from model.loss import cross_entropy_loss, sop_loss
from trainer.best import BestEpochs
from trainer.checkpoint import BEST, LATEST, save_atomic
from utils.atomic import atomic_open
from utils.dist import (DistInfo, all_gather_rows, broadcast_buffers, differentiable_sum, max_across_ranks,
                        sum_across_ranks)
from utils.errors import CheckpointError, ConfigError
from utils.runtime import autocast, to_layout
from utils.seed import rng_state, set_rng_state


class NonFiniteLoss(Exception):
    """Training diverged; the last good checkpoint is kept. Exit code 3."""


class TrainingInterrupted(Exception):
    """A stop was requested (SIGTERM/SIGINT); the latest checkpoint is saved."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class Trainer:
    def __init__(self, model, optimizer, scheduler, data, config, run_dir, metrics, log,
                 device, sop_params=None, amp_dtype=None, channels_last=False, compiled_model=None, callbacks=(),
                 train_forward=None, dist=DistInfo()):
        # forward: evaluation (the model, compiled when asked); train_forward: the same wrapped
        # for data parallelism when there are several ranks
        self.model, self.forward = model, compiled_model or model
        self.train_forward = train_forward or self.forward
        self.dist = dist
        self.optimizer, self.scheduler = optimizer, scheduler
        self.sop = sop_params
        self.data, self.config, self.run_dir = data, config, run_dir
        self.metrics, self.log, self.device = metrics, log, device
        self.amp_dtype, self.channels_last = amp_dtype, channels_last
        # objects with any of on_batch(batch, logits), on_epoch_end(epoch, trainer) -> dict or None,
        # on_fit_end(trainer) (after results.json: trainer.results), summary_parts(result) -> list of
        # str, state_dict / load_state_dict
        self.callbacks = list(callbacks)
        self._batch_hooks = self._hooks("on_batch")   # looked up once: they run at every step
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        loss_args = config["train_loss"]["args"]
        self.ratio_consistency = float(loss_args.get("ratio_consistency", 0.0))
        self.ratio_balance = float(loss_args.get("ratio_balance", 0.0))
        self.ce_weight = None   # per training sample; the oracle's keep / kept fraction (model.loss)
        if config["train_loss"]["type"] == "oracle_cross_entropy":
            keep = (data.train_noisy == data.train_clean).float()
            if not keep.any():
                raise ConfigError("train_loss.type oracle_cross_entropy: no training label is correct, "
                                  "so there is nothing to train on")
            self.ce_weight = keep / keep.mean()
        self.epochs = config["trainer"]["epochs"]
        self.best = BestEpochs(config["trainer"]["monitor"], data.val_loader is not None)
        self.start_epoch = 0
        self.results = None          # results.json's summary, once fit has written it
        self.sync_every = 1 if device.type == "cpu" else 25
        self.stop_signal = None          # set by a signal handler; checked after every step
        self.resume_progress = None      # a mid-epoch checkpoint's "progress", used by the next train_epoch

    def request_stop(self, signum):
        """Stop after the current step, saving a checkpoint (safe to call from a signal handler)."""
        self.stop_signal = signum

    # ---- one step / one epoch -------------------------------------------------
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _prepare(self, x):
        return to_layout(x, self.channels_last)

    def train_step(self, batch):
        size = len(batch.index)
        x = batch.x if batch.x_strong is None else torch.cat([batch.x, batch.x_strong])
        with self._autocast():
            out = self.train_forward(self._prepare(x))
        out = out.float()
        logits, logits_strong = out[:size], (out[size:] if batch.x_strong is not None else None)
        # with several ranks, scale each rank's loss so that DDP's gradient average is the
        # gradient of the global-batch loss (see model.loss.sop_loss)
        global_size = batch.global_size or size
        share = size * self.dist.world_size / global_size
        if self.sop is not None:
            u_rows, v_rows = self.sop.rows(batch.index)
            batch_mean = (lambda q: differentiable_sum(q.sum(dim=0)) / global_size) if self.dist.enabled else None
            terms = sop_loss(logits, batch.y, u_rows, v_rows, logits_strong,
                             self.ratio_consistency, self.ratio_balance, share=share, batch_mean=batch_mean)
        else:
            weight = None if self.ce_weight is None else self.ce_weight[batch.index]
            terms = cross_entropy_loss(logits, batch.y, share=share, weight=weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["loss"]).backward()
        if self.sop is not None:
            scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
            self.sop.step(batch.index, u_rows, v_rows, grad_scale=scale)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return logits.detach(), {k: v.detach() for k, v in terms.items()}

    def _check_finite(self, epoch, first_step, pending):
        stacked = {k: torch.stack([terms[k] for terms in pending]) for k in pending[0]}
        bad = ~torch.isfinite(sum_across_ranks(stacked["loss"]))   # every rank stops together
        if bad.any():
            offset = int(bad.nonzero()[0])
            values = ", ".join(f"{k}={float(v[offset]):.4g}" for k, v in stacked.items())
            latest = os.path.join(self.run_dir, LATEST)
            kept = f"the last good checkpoint is {latest}" if os.path.exists(latest) else "no checkpoint written yet"
            raise NonFiniteLoss(f"non-finite loss at epoch {epoch}, step {first_step + offset + 1}: {values}; {kept}")

    def train_epoch(self, epoch):
        self.model.train()
        loader = self.data.train_loader
        progress, self.resume_progress = self.resume_progress, None
        progress = progress if progress is not None and progress["epoch"] == epoch else None
        first = progress["step"] if progress else 0
        exact = getattr(loader, "exact_resume", False)
        if first and exact:
            loader.set_epoch(epoch, first, progress["generator"])
        else:
            loader.set_epoch(epoch)
        num_batches = len(loader)
        sums, correct, correct_clean, seen, elapsed = {}, 0, 0, 0, 0.0
        if progress and self.dist.is_main:  # saved sums are global: one rank carries them on
            sums, correct, correct_clean = dict(progress["sums"]), progress["correct"], progress["correct_clean"]
            seen, elapsed = int(progress["seen"]), float(progress["seconds"])
        elif progress:
            elapsed = float(progress["seconds"])
        pending, start = [], time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.epochs}", leave=False, dynamic_ncols=True,
                   total=num_batches, initial=first if exact else 0,
                   # None: only on a terminal, so piped or redirected output gets no bar refreshes
                   disable=None if self.config["trainer"]["progress_bar"] else True)
        batches = iter(bar)
        if first and not exact:
            # e.g. PILLoader: replay the epoch's batch order and drop the done batches. Their
            # augmentation draws are redone, so the rest of the epoch is not bit-identical.
            batches = itertools.islice(batches, first, None)
        for step, batch in enumerate(batches, start=first):
            logits, terms = self.train_step(batch)
            if self._batch_hooks:
                self._notify_batch(batch, logits)
            size = len(batch.index)
            predicted = logits.argmax(dim=1)
            correct = correct + (predicted == batch.y).sum()
            if self.data.train_clean is not None:
                correct_clean = correct_clean + (predicted == self.data.train_clean[batch.index]).sum()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value * size
            seen += size
            pending.append(terms)
            if len(pending) >= self.sync_every:
                self._check_finite(epoch, step + 1 - len(pending), pending)
                pending = []
                bar.set_postfix(loss=f"{float(sums['loss']) / seen:.3f}", acc=f"{float(correct) / seen:.3f}")
            if self._stop_agreed() and step + 1 < num_batches:
                if pending:
                    self._check_finite(epoch, step + 1 - len(pending), pending)
                bar.close()
                sums, correct, correct_clean, seen = self._reduce(sums, correct, correct_clean, seen)
                self._stop_mid_epoch(epoch, step + 1, num_batches, dict(
                    sums=sums, correct=correct, correct_clean=correct_clean, seen=seen,
                    seconds=elapsed + time.perf_counter() - start))
        if pending:
            self._check_finite(epoch, step + 1 - len(pending), pending)
        sums, correct, correct_clean, seen = self._reduce(sums, correct, correct_clean, seen)
        seconds = elapsed + time.perf_counter() - start
        result = {f"loss/train_{k}" if k != "loss" else "loss/train": float(v) / seen for k, v in sums.items()}
        result["accuracy/train"] = float(correct) / seen
        if self.data.train_clean is not None:
            result["accuracy/train_clean_labels"] = float(correct_clean) / seen
        result["time/epoch_seconds"] = seconds
        result["time/train_images_per_s"] = seen / seconds
        return result

    def _notify_batch(self, batch, logits):
        """Callbacks see every rank's rows of the step (u/v-sized state stays identical on all ranks)."""
        if self.dist.enabled:
            index, y, logits = all_gather_rows(batch.index, batch.y, logits)
            batch = batch._replace(index=index, y=y, x=None, x_strong=None)
        for hook in self._batch_hooks:
            hook(batch, logits)

    def _hooks(self, name):
        """The callbacks' methods called ``name`` (each hook is optional)."""
        return [getattr(cb, name) for cb in self.callbacks if hasattr(cb, name)]

    def _stop_agreed(self):
        """Whether to stop now; with several ranks, as soon as any rank got a signal."""
        if self.dist.enabled:
            signal = int(max_across_ranks(torch.tensor([self.stop_signal or 0], device=self.device)))
            self.stop_signal = signal or None
        return self.stop_signal is not None

    def _sum_over_ranks(self, *values):
        """Scalars (numbers or 0-d tensors) summed over all ranks, in one all-reduce."""
        packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.device).reshape(()) for v in values])
        return sum_across_ranks(packed).unbind()

    def _reduce(self, sums, correct, correct_clean, seen):
        """The epoch's training sums over all ranks."""
        if not self.dist.enabled:
            return sums, correct, correct_clean, seen
        keys = sorted(sums)
        *loss_sums, correct, correct_clean, seen = self._sum_over_ranks(*(sums[k] for k in keys), correct,
                                                                        correct_clean, seen)
        return dict(zip(keys, loss_sums)), correct, correct_clean, int(seen)

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        if self.dist.enabled:
            broadcast_buffers(self.model)   # BatchNorm running statistics as rank 0 has them
        loss_sum, correct, seen = 0.0, 0, 0
        for batch in loader:
            with self._autocast():
                logits = self.forward(self._prepare(batch.x)).float()
            loss_sum = loss_sum + torch.nn.functional.cross_entropy(logits, batch.y, reduction="sum")
            correct = correct + (logits.argmax(dim=1) == batch.y).sum()
            seen += len(batch.y)
        if self.dist.enabled:
            loss_sum, correct, seen = self._sum_over_ranks(loss_sum, correct, seen)
            seen = int(seen)
        return float(loss_sum) / seen, float(correct) / seen

    def _stop_mid_epoch(self, epoch, steps, num_batches, partial):
        """Save a checkpoint after ``steps`` steps of ``epoch`` and raise TrainingInterrupted."""
        loader = self.data.train_loader
        exact = getattr(loader, "exact_resume", False)
        progress = {"epoch": epoch, "step": steps, "num_batches": num_batches, "batch_size": loader.batch_size,
                    "generator": loader.generator.get_state() if exact else None, **partial}
        if self.dist.is_main:
            save_atomic(self.state_dict(epoch - 1, progress), os.path.join(self.run_dir, LATEST))
        raise TrainingInterrupted(f"stopped by signal {self.stop_signal} at epoch {epoch}, step {steps}/{num_batches}"
                                  f"; checkpoint saved; resume with -r {self.run_dir}", 128 + self.stop_signal)

    # ---- checkpoints ----------------------------------------------------------
    def state_dict(self, epoch, progress=None):
        """``epoch`` finished epochs; ``progress``: steps done in the next one (a stop mid-epoch)."""
        return {
            "epoch": epoch,
            "arch": self.config["arch"]["type"],
            "num_train": self.data.num_train,
            "data_fingerprint": self.data.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "sop": self.sop.state_dict() if self.sop is not None else None,
            "best": self.best.state_dict(),
            "rng": rng_state(),
            "config": self.config,
            "progress": progress,
            # callbacks with per-epoch state (e.g. buffers filled by on_batch) may offer state_dict/load_state_dict
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self.callbacks],
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["lr_scheduler"] is not None:
            self.scheduler.load_state_dict(state["lr_scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.sop is not None:
            self.sop.load_state_dict(state["sop"])
        self.best.load_state_dict(state["best"])
        set_rng_state(state["rng"])
        for callback, saved in zip(self.callbacks, state.get("callbacks") or ()):
            if saved is not None and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(saved)
        progress = state.get("progress")
        loader = self.data.train_loader
        # the batch size cannot change on resume (parse_config), but the world size can, and with it
        # whether a small trailing batch is a batch of its own (data_loader.loaders.batch_count)
        if progress and (progress["num_batches"] != len(loader) or progress["batch_size"] != loader.batch_size):
            raise CheckpointError(f"the checkpoint stopped at step {progress['step']} of {progress['num_batches']} "
                                  f"batches of {progress['batch_size']} in epoch {progress['epoch']}, but this run "
                                  f"has {len(loader)} batches of {loader.batch_size} per epoch; resume it with the "
                                  f"number of processes it had")
        self.resume_progress = progress
        self.start_epoch = int(state["epoch"])

    # ---- the whole run --------------------------------------------------------
    def _evaluate_all(self, epoch):
        result = {}
        if epoch % self.config["trainer"]["eval_every"] == 0 or epoch == self.epochs:
            result["loss/test"], result["accuracy/test"] = self.evaluate(self.data.test_loader)
            if self.data.val_loader is not None:
                result["loss/val"], result["accuracy/val"] = self.evaluate(self.data.val_loader)
        return result

    def _epoch_line(self, epoch, result):
        parts = [f"epoch {epoch:>3}/{self.epochs}", f"loss {result['loss/train']:.4f}",
                 f"train acc {result['accuracy/train']:.4f}"]
        for key, label in (("accuracy/val", "val acc"), ("accuracy/test", "test acc")):
            if key in result:
                parts.append(f"{label} {result[key]:.4f}")
        for hook in self._hooks("summary_parts"):
            parts += hook(result)
        parts += [f"lr {result['lr']:.3g}", f"{result['time/epoch_seconds']:.1f}s",
                  f"{result['time/train_images_per_s']:.0f} img/s"]
        return " | ".join(parts)

    def fit(self):
        for epoch in range(self.start_epoch + 1, self.epochs + 1):
            lr = self.optimizer.param_groups[0]["lr"]
            result = self.train_epoch(epoch)
            result["lr"] = lr
            if self.scheduler is not None:
                self.scheduler.step()
            result.update(self._evaluate_all(epoch))
            for hook in self._hooks("on_epoch_end"):
                result.update(hook(epoch, self) or {})
            improved = self.best.update(epoch, result)
            if self.dist.is_main:
                self.metrics.write(epoch, result)
                self.log.info(self._epoch_line(epoch, result))
                state = self.state_dict(epoch)
                save_atomic(state, os.path.join(self.run_dir, LATEST))
                if improved:
                    save_atomic(state, os.path.join(self.run_dir, BEST))
            if self._stop_agreed():
                raise TrainingInterrupted(f"stopped by signal {self.stop_signal} after epoch {epoch}; resume with "
                                          f"-r {os.path.join(self.run_dir, LATEST)}", 128 + self.stop_signal)
        if not self.dist.is_main:
            return None
        self.results = self.report()   # first: results.json does not wait on the callbacks' end-of-run work
        for hook in self._hooks("on_fit_end"):
            hook(self)
        return self.results

    def report(self):
        last = None
        path = self.metrics.path
        if os.path.exists(path):
            with open(path) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            last = next((r["accuracy/test"] for r in reversed(rows) if "accuracy/test" in r), None)
        summary = self.best.summary(last)
        with atomic_open(os.path.join(self.run_dir, "results.json")) as f:
            json.dump(summary, f, indent=2)
        self.log.info(self.best.summary_line(last))
        return summary
