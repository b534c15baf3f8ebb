"""Speed benchmark: data pipelines, full training steps, SOP overhead, u/v cost vs N, precision modes,
test-pass speed by eval batch size.

    python benchmarks/speed.py                 # full run, prints a markdown table
    python benchmarks/speed.py --quick         # seconds-long smoke run (small sizes, 1 repeat)
    python benchmarks/speed.py --compile       # also time torch.compile (on CPU the compile takes minutes)
    python benchmarks/speed.py --out FILE.md   # also write the table to FILE.md

Everything is measured in one run on one machine with synthetic CIFAR-sized data.
Each measurement is repeated (--repeats, rounds interleaved between the compared
variants so a noisy neighbour hits both alike) and the median is reported.
On CUDA every timed region starts and ends with ``torch.cuda.synchronize()``.
"""
import argparse
import copy
import os
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_loader.loaders import Batch, DeviceLoader, PILLoader  # noqa: E402
from model.networks import build_arch  # noqa: E402
from model.sop_params import SampleNoiseParams  # noqa: E402
from trainer.trainer import Trainer  # noqa: E402
from utils.config_schema import DEFAULTS  # noqa: E402
from utils.runtime import autocast, resolve_amp, resolve_channels_last, resolve_device, to_layout  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_cifar(n, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, num_classes, n)


# ---- 1. data pipelines ---------------------------------------------------------
def pipeline_images_per_s(loader, device, skip):
    """Images/s of one epoch after the first ``skip`` batches (worker start-up is not steady state)."""
    seen, start = 0, None
    for step, batch in enumerate(loader):
        if step == skip:
            sync(device)
            start = time.perf_counter()
        elif step > skip:
            seen += len(batch.index)
    sync(device)
    return seen / (time.perf_counter() - start)


def bench_pipelines(args, device):
    images, labels = fake_cifar(args.batch_size * args.pipeline_batches, 10)
    common = dict(mean=MEAN, std=STD, batch_size=args.batch_size, train=True, strong_view=True, device=device)
    loaders = {
        f"official-style: PIL transforms, DataLoader num_workers={os.cpu_count()}":
            PILLoader(images, labels, num_workers=os.cpu_count(), **common),
        f"device-resident batched ({device.type})": DeviceLoader(images, labels, **common),
    }
    times = {name: [] for name in loaders}
    for r in range(args.repeats):
        for name, loader in loaders.items():
            loader.set_epoch(r)
            times[name].append(pipeline_images_per_s(loader, device, skip=2))
    return {name: statistics.median(v) for name, v in times.items()}


# ---- 2-4. training steps -------------------------------------------------------
def make_trainer(arch, width, num_classes, num_train, loss, device, amp_dtype=None, channels_last=False,
                 compile_model=False):
    model = to_layout(build_arch(arch, num_classes, {"width": width}).to(device), channels_last)
    config = copy.deepcopy(DEFAULTS)
    config["train_loss"]["type"] = loss
    sop = None
    if loss == "sop":
        a = config["train_loss"]["args"]
        sop = SampleNoiseParams(num_train, num_classes, a["lr_u"], a["lr_v"], a["init_std"], device=device,
                                generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    data = SimpleNamespace(val_loader=None)
    return Trainer(model, optimizer, None, data, config, None, None, None, device, sop_params=sop,
                   amp_dtype=amp_dtype, channels_last=channels_last,
                   compiled_model=torch.compile(model) if compile_model else None)


def make_batches(count, batch_size, num_classes, num_train, device, seed=0):
    """Weak-view batches from the device pipeline, with indices spread over all ``num_train`` rows."""
    images, labels = fake_cifar(batch_size * count, num_classes, seed)
    loader = DeviceLoader(images, labels, MEAN, STD, batch_size, train=True, device=device)
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randperm(num_train, generator=g)[:len(b.index)].to(device), b.x, b.y, None)
            for b in loader]


def step_seconds(trainer, batches, device, warmup):
    """Median seconds per ``Trainer.train_step`` over ``batches`` after ``warmup`` steps."""
    for batch in batches[:warmup]:
        trainer.train_step(batch)
    sync(device)
    start = time.perf_counter()
    for batch in batches[warmup:]:
        trainer.train_step(batch)
    sync(device)
    return (time.perf_counter() - start) / len(batches[warmup:])


def bench_steps(variants, batches, device, args):
    """variants: name -> trainer. Interleaved rounds; returns name -> median seconds per step."""
    times = {name: [] for name in variants}
    for r in range(args.repeats):
        for name, trainer in variants.items():
            times[name].append(step_seconds(trainer, batches, device, warmup=args.warmup if r == 0 else 1))
    return {name: statistics.median(v) for name, v in times.items()}


def bench_sop_overhead(args, device):
    rows = []
    for arch, width in (("PreActResNet18", 64), ("PreActResNet18", 8)):
        batches = make_batches(args.warmup + args.steps, args.batch_size, 10, 50_000, device)
        variants = {loss: make_trainer(arch, width, 10, 50_000, loss, device) for loss in ("cross_entropy", "sop")}
        result = bench_steps(variants, batches, device, args)
        rows.append((f"{arch} width {width}", result["cross_entropy"], result["sop"]))
    return rows


def bench_num_train(args, device):
    result = {}
    for n in (50_000, args.large_n):
        batches = make_batches(args.warmup + args.steps, args.batch_size, 100, n, device)
        trainer = make_trainer("PreActResNet18", 8, 100, n, "sop", device)
        result[n] = bench_steps({n: trainer}, batches, device, args)[n]
        del trainer
    return result


def bench_precision(args, device):
    batches = make_batches(args.warmup + args.steps, args.batch_size, 10, 50_000, device)
    variants = {
        "fp32": dict(),
        "bf16 autocast": dict(amp_dtype=torch.bfloat16),
        "bf16 + channels_last": dict(amp_dtype=torch.bfloat16, channels_last=True),
    }
    if args.compile:
        variants["bf16 + channels_last + torch.compile"] = dict(amp_dtype=torch.bfloat16, channels_last=True,
                                                               compile_model=True)
    trainers = {name: make_trainer("PreActResNet18", 64, 10, 50_000, "sop", device, **kw)
                for name, kw in variants.items()}
    return bench_steps(trainers, batches, device, args)


def bench_eval_batch(args, device):
    """Images/s of a width-16 test pass at eval batch 64 and 512 (what eval_batch_size "auto"
    picks on CPU and on CUDA), in the precision and layout that "auto" picks on this device."""
    amp, channels_last = resolve_amp("auto", device), resolve_channels_last("auto", device)
    images = to_layout(torch.randn(args.eval_images, 3, 32, 32, device=device), channels_last)
    model = to_layout(build_arch("PreActResNet18", 10, {"width": 16}).to(device).eval(), channels_last)
    times = {bs: [] for bs in (64, 512)}
    with torch.inference_mode(), autocast(device, amp):
        for bs in times:   # warm-up: one-off kernel selection per shape
            model(images[:bs])
        for _ in range(args.repeats):
            for bs in times:
                sync(device)
                start = time.perf_counter()
                for i in range(0, len(images), bs):
                    model(images[i:i + bs])
                sync(device)
                times[bs].append(len(images) / (time.perf_counter() - start))
    return {bs: statistics.median(t) for bs, t in times.items()}


# ---- report --------------------------------------------------------------------
def machine(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", no GPU"
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} intra-op threads){gpu}")


def load():
    return " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def report(args, device, pipes, overhead, by_n, precision, eval_batch, load_before):
    bs = args.batch_size
    lines = [f"Machine: {machine(device)}. Training device: {device}.",
             f"Load average (1/5/15 min) before / after: {load_before} / {load()}; medians of {args.repeats} "
             f"interleaved repeats.", "",
             f"| Measurement | Setting | Result |", "|---|---|---|"]
    base = None
    for name, ips in pipes.items():
        base = base or ips
        lines.append(f"| 1. SOP+ two-view batches of {bs} (images/s) | {name} | {ips:,.0f} img/s "
                     f"({ips / base:.1f}x) |")
    for model, ce, sop in overhead:
        lines.append(f"| 2. full training step, {model} | cross-entropy | {bs / ce:,.0f} img/s ({ce * 1e3:.1f} ms) |")
        lines.append(f"| 2. full training step, {model} | SOP | {bs / sop:,.0f} img/s ({sop * 1e3:.1f} ms), "
                     f"overhead {100 * (sop / ce - 1):+.1f}% |")
    if by_n:
        small, large = by_n[50_000], by_n[args.large_n]
        lines.append(f"| 3. SOP step, width 8, C = 100 | N = 50,000 | {small * 1e3:.2f} ms |")
        lines.append(f"| 3. SOP step, width 8, C = 100 | N = {args.large_n:,} | {large * 1e3:.2f} ms, "
                     f"ratio {large / small:.3f} |")
    for name, sec in (precision or {}).items():
        lines.append(f"| 4. full SOP step, PreActResNet18 | {name} | {bs / sec:,.0f} img/s ({sec * 1e3:.1f} ms) |")
    if precision is None:
        lines.append("| 4. precision modes | not run | CUDA only by default (--precision runs it on CPU) |")
    for eval_bs, ips in (eval_batch or {}).items():
        lines.append(f"| 5. test pass, PreActResNet18 width 16 | eval batch {eval_bs} | {ips:,.0f} img/s |")
    return "\n".join(lines)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: a smoke run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pipeline-batches", type=int, default=24, help="batches per pipeline epoch")
    p.add_argument("--steps", type=int, default=4, help="timed training steps per repeat")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--large-n", type=int, default=1_000_000, help="training-set size compared with 50,000")
    p.add_argument("--precision", action="store_true", help="run section 4 on CPU too")
    p.add_argument("--compile", action="store_true", help="add a torch.compile row to section 4")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--eval-images", type=int, default=2048, help="images per timed test pass (section 5)")
    p.add_argument("--skip", default="",
                   help="comma-separated sections to skip: pipeline,overhead,n,precision,eval")
    p.add_argument("--out", help="also write the markdown to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batch_size, args.pipeline_batches = 1, 16, 4
        args.steps, args.warmup, args.large_n, args.eval_images = 1, 1, 200_000, 128
    return args


def main(argv=None):
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device()
    torch.manual_seed(0)
    load_before = load()
    skip = set(args.skip.split(","))
    pipes = bench_pipelines(args, device) if "pipeline" not in skip else {}
    overhead = bench_sop_overhead(args, device) if "overhead" not in skip else []
    by_n = bench_num_train(args, device) if "n" not in skip else {}
    run_precision = "precision" not in skip and (device.type == "cuda" or args.precision)
    precision = bench_precision(args, device) if run_precision else None
    eval_batch = bench_eval_batch(args, device) if "eval" not in skip else {}
    table = report(args, device, pipes, overhead, by_n, precision, eval_batch, load_before)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
