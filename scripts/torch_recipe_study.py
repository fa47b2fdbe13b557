"""Compare training recipes over many seeds on a GPU: a PyTorch proxy of edgenet's recipe.

One build of the shipped recipe is one draw from a seed spread of about 1.5 points of FER2013 val (docs/training.md),
as wide as any recipe change tried, so one CPU build per candidate cannot say which recipe is better. This script
trains many seeds of several recipe arms at once on a GPU and reports each arm's seed mean. It is a research proxy,
not the build: the shipped bundle is always trained by ``scripts/build_default_model.sh`` (Keras, CPU).

What it mirrors (``convert/recipes.py``, ``convert/train.py``, ``convert/augment.py``): edgenet at the shipped width
(mid channels 64,128,128,96) with ECA gates, dropout 0.1, no SpatialDropout, BatchNorm momentum 0.95 / eps 1e-3 with
zero-initialised last BatchNorm of each branch, AdamW (lr 2e-3, decoupled weight decay 0.2 since session 18 or per arm,
``wd=``; per-variable gradient clip norm 5),
half an epoch of warm-up from lr/20, cosine decay to 1 %, label smoothing 0.1, batch 128, the same augmentation (affine
with reflection, contrast, brightness, noise), an optional SWA phase (constant lr, end-of-epoch weight average,
BatchNorm recomputed over one augmented pass), flip test-time averaging at evaluation. What it does not: GENKI's
partial-label photos (FER2013 only), Keras's asymmetric 'same' padding at stride 2, truncated He initialisation, bf16 on
AMX.

Self-contained on purpose: the GPU machines this project is lent have PyTorch but neither TensorFlow nor pydantic,
so the few constants it shares with ``convert/`` are repeated here; ``tests/convert/test_torch_recipe_study.py`` checks
them (classes, valence map, ECA kernel sizes, the learning-rate schedule) against the project's own.

All arms' models train in lockstep as one grouped network (each model is a group of channels: its own weights,
batches, dropout masks and learning rate), which keeps a small CNN's GPU kernels large.

Cost, measured on an NVIDIA H200 (session 17). Eager PyTorch is launch-bound: a step took 34.3 ms for 2 models and
37.6 ms for 16, an epoch 5.4-7.7 s, so 96 epochs take about 11 minutes whatever the seed count. With ``--graph`` the
step is one replayed CUDA graph: 5.3 ms for 2 models, 13.9 for 8, 24.8 for 16; 96 epochs of 2 arms x 2 seeds took
181 s (1.8 s an epoch), of 16 models about 9 minutes (5.6 s an epoch). ``--budget-s`` measures the step time first
and stops before training if the study cannot fit.
Session 18: 80 epochs of 4 arms x 4 seeds took 458 s of training (25.1 ms a step for 16 models), 479 s for the
whole command; 96 epochs of 2 x 2 seeds 184 s.

    python scripts/torch_recipe_study.py pack --data ../shared/data --out .gpu/fer.npz
    python scripts/torch_recipe_study.py run --data .gpu/fer.npz --arm swa16:epochs=80,swa=16 \\
        --arm cos96:epochs=96 --seeds 2 --graph --out results.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # convert.datasets' order
VALENCE = np.array([2, 2, 2, 0, 2, 1, 1])  # positive 0, neutral 1, negative 2 (convert.datasets.FER_VALENCE)


def pack(data: Path, out: Path) -> None:
    """FER2013 train/val as their original JPEG bytes (smaller than decoded pixels) + labels, one npz.

    Runs on the workstation, so it lists images with the project's own ``list_class_folders`` (same labels, same
    checks); only ``run`` has to work without the project's dependencies."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from convert.datasets import list_class_folders
    from edge.errors import ConfigError

    arrays = {}
    for split in ("train", "val"):
        try:
            items = list_class_folders(data / "fer2013" / split)
        except ConfigError as e:
            raise SystemExit(f"pack: {e}") from None
        blobs, labels = [p.read_bytes() for p, _ in items], [k for _, k in items]
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_ends"] = np.cumsum([len(b) for b in blobs])
        arrays[f"{split}_y"] = np.array(labels, np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, {len(arrays['train_y'])} train, {len(arrays['val_y'])} val")


def unpack(path: Path) -> dict[str, np.ndarray]:
    import cv2

    z = np.load(path)
    out = {}
    for split in ("train", "val"):
        raw, ends = z[f"{split}_bytes"], z[f"{split}_ends"]
        starts = np.concatenate([[0], ends[:-1]])
        imgs = [cv2.imdecode(raw[s:e], cv2.IMREAD_GRAYSCALE) for s, e in zip(starts, ends)]
        out[f"x_{split}"] = np.stack([im if im.shape == (48, 48) else cv2.resize(im, (48, 48)) for im in imgs])
        out[f"y_{split}"] = z[f"{split}_y"]
    return out


@dataclass(frozen=True)
class Arm:
    """One recipe variant."""

    name: str
    epochs: int = 80  # cosine epochs
    swa: int = 0  # SWA epochs after them
    swa_lr: float = 3e-4
    lr: float = 2e-3
    warmup: float = 0.5  # epochs (edgenet's recipe)
    eca: bool = True
    wd: float = 0.2  # AdamW's decoupled weight decay (train --weight-decay; the build's since session 18)

    @classmethod
    def parse(cls, text: str) -> Arm:
        name, _, rest = text.partition(":")
        kw: dict = {}
        settings = [f for f in cls.__dataclass_fields__ if f != "name"]
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            if k not in settings:
                raise SystemExit(f"arm {name!r}: unknown setting {k!r}; use {', '.join(settings)} "
                                 "(e.g. epochs=80,swa=16)")
            kw[k] = (v.lower() in ("1", "true", "yes")) if k == "eca" else type(getattr(cls, k))(v)
        return cls(name, **kw)

    @property
    def total(self) -> int:
        return self.epochs + self.swa


def eca_kernel_size(c: int) -> int:
    t = int(abs((math.log2(c) + 1) / 2))
    return t if t % 2 else t + 1


def build(models: int, eca_on: np.ndarray):  # noqa: C901 - one network definition
    import torch
    from torch import nn

    K = models

    class BN(nn.BatchNorm2d):
        def __init__(self, c: int, zero: bool = False):
            super().__init__(K * c, eps=1e-3, momentum=0.05)
            if zero:
                nn.init.zeros_(self.weight)

    def conv(cin, cout, k, stride=1):
        m = nn.Conv2d(K * cin, K * cout, k, stride, padding=k // 2, groups=K, bias=False)
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        return m

    class ECA(nn.Module):
        def __init__(self, c):
            super().__init__()
            k = eca_kernel_size(c)
            self.c, self.k = c, k
            lim = math.sqrt(6.0 / (2 * k))
            self.weight = nn.Parameter(torch.empty(K, 1, k).uniform_(-lim, lim))
            self.register_buffer("on", torch.tensor(eca_on, dtype=torch.float32).view(1, K, 1))

        def forward(self, y):
            n = y.shape[0]
            s = y.float().mean((2, 3)).view(n, K, self.c)
            g = torch.sigmoid(nn.functional.conv1d(s, self.weight, padding=self.k // 2, groups=K))
            g = g * self.on + (1 - self.on)
            return y * g.view(n, K * self.c, 1, 1).to(y.dtype)

    class Block(nn.Module):
        def __init__(self, cin, f, stride, mid):
            super().__init__()
            self.c1, self.b1 = conv(cin, mid, 3, stride), BN(mid)
            self.c2, self.b2 = conv(mid, f, 3), BN(f, zero=True)
            self.eca = ECA(f)
            self.short = None
            if stride != 1 or cin != f:
                self.short = nn.Sequential(conv(cin, f, 1, stride), BN(f))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.eca(self.b2(self.c2(y)))
            return torch.relu(y + (x if self.short is None else self.short(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.sb = conv(1, 32, 3), BN(32)
            self.blocks = nn.Sequential(Block(32, 64, 1, 64), Block(64, 128, 2, 128), Block(128, 128, 1, 128),
                                        Block(128, 192, 2, 96))
            lim = math.sqrt(6.0 / (192 + 7))
            self.w = nn.Parameter(torch.empty(K, 192, 7).uniform_(-lim, lim))
            self.b = nn.Parameter(torch.zeros(K, 7))
            self.drop = nn.Dropout(0.1)

        def forward(self, x):  # x: (N, K, 48, 48) -> logits (N, K, 7)
            x = nn.functional.max_pool2d(torch.relu(self.sb(self.stem(x))), 2)
            x = self.blocks(x).float().mean((2, 3))
            x = self.drop(x).view(x.shape[0], K, 192)
            return torch.einsum("nkc,kco->nko", x, self.w) + self.b

    return Net()


def augment(x, g):
    """x: (M, 48, 48) float in [0, 1] on the GPU -> augmented, as convert.augment.augment_batch."""
    import torch
    import torch.nn.functional as F

    m, s = x.shape[0], x.shape[-1]
    u = lambda lo, hi: torch.rand(m, device=x.device, generator=g) * (hi - lo) + lo
    ang = u(-1, 1) * (15 * math.pi / 180)
    scale = u(0.85, 1.15)
    tx, ty = u(-0.1, 0.1) * 2 * s / (s - 1), u(-0.1, 0.1) * 2 * s / (s - 1)  # normalised (align_corners) units
    flip = torch.where(u(0, 1) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, -tx], 1), torch.stack([sin * flip, cos, -ty], 1)], 1)
    grid = F.affine_grid(theta, (m, 1, s, s), align_corners=True)
    x = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="reflection", align_corners=True)[:, 0]
    mean = x.mean((1, 2), keepdim=True)
    x = (x - mean) * u(0.7, 1.3)[:, None, None] + mean
    x = x + u(-0.2, 0.2)[:, None, None]
    x = x + torch.randn(x.shape, device=x.device, generator=g) * u(0, 0.02)[:, None, None]
    return x.clamp(0, 1)


def lr_at(arm: Arm, step: int, steps_per_epoch: int) -> float:
    """Keras CosineDecay with linear warm-up (convert.train._lr_schedule), then the constant SWA rate."""
    total, warm = arm.epochs * steps_per_epoch, int(arm.warmup * steps_per_epoch)
    if step >= total:
        return arm.swa_lr
    if step < warm:
        return arm.lr / 20 + (arm.lr - arm.lr / 20) * step / warm
    t = (step - warm) / max(1, total - warm)
    return arm.lr * (0.99 * 0.5 * (1 + math.cos(math.pi * t)) + 0.01)


def per_model(t, models: int):
    """``t`` (a parameter or its gradient, models' channels grouped on the first axis) as (models, ...): a view,
    whatever the memory format."""
    return t.unflatten(0, (models, -1))


def col(v, like):
    """A per-model vector shaped to broadcast against ``per_model(...)`` tensors like ``like``."""
    return v.view(-1, *[1] * (like.ndim - 1)).to(like.dtype)


def augmented_batch(xtr, idx, g):
    """The network's input for batches ``idx`` (K, m) of uint8 images ``xtr``: augmented, (m, K, 48, 48)."""
    import torch

    K, m = idx.shape
    xb = augment(xtr[idx.reshape(-1)].float() / 255, g).view(K, m, 48, 48).transpose(0, 1)
    return xb.contiguous(memory_format=torch.channels_last)


def train_step(net, params, state, xtr, ytr, idx, g, lr, wd, t) -> None:
    """One step of every model: augmented batches ``idx`` (K, m), label-smoothed CE, AdamW with per-model ``lr``
    and weight decay ``wd``;
    ``t`` is the step number (from 1), an int or a 0-d tensor; ``g`` the augmentation's generator (None: default)."""
    import torch

    K, m = idx.shape
    dev = xtr.device
    yb = ytr[idx].T  # (m, K)
    # No autocast weight cache: a CUDA graph capture must not keep casts made outside it.
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda", cache_enabled=False):
        logits = net(augmented_batch(xtr, idx, g)).float()
    # Sum over models of each model's batch mean: every model gets its own gradient.
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), yb.reshape(-1), label_smoothing=0.1,
                                             reduction="sum") / m
    for p in params:
        p.grad = None
    loss.backward()
    bc1, bc2 = 1 - 0.9 ** t, 1 - 0.999 ** t
    with torch.no_grad():
        for p, (m1, v2) in zip(params, state):
            gr = per_model(p.grad, K)
            norm = torch.linalg.vector_norm(gr.float(), dim=tuple(range(1, gr.ndim)))
            gr.mul_(col((5.0 / (norm + 1e-12)).clamp(max=1.0), gr))  # Keras clipnorm, per model
            m1.mul_(0.9).add_(p.grad, alpha=0.1)
            v2.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
            upd = per_model((m1 / bc1) / ((v2 / bc2).sqrt_().add_(1e-7)), K)
            upd.add_(col(wd, upd) * per_model(p, K))  # decoupled weight decay, times lr below
            per_model(p, K).sub_(col(lr, upd) * upd)


class GraphedStep:
    """``train_step`` captured once as a CUDA graph and replayed: eager PyTorch spends about 35 ms a step launching
    this small network's kernels on an H200 (session 17). Batches must be full (``batch`` images per model); the
    augmentation and dropout draw from the default CUDA generator, which graphs replay safely."""

    def __init__(self, net, params, state, xtr, ytr, models: int, batch: int, wd) -> None:
        import torch

        dev = xtr.device
        self.idx = torch.zeros((models, batch), dtype=torch.long, device=dev)
        self.lr = torch.zeros(models, device=dev)
        self.t = torch.ones((), device=dev)
        run = lambda: train_step(net, params, state, xtr, ytr, self.idx, None, self.lr, wd, self.t)
        tensors = [*net.parameters(), *net.buffers(), *(x for pair in state for x in pair)]
        saved = [x.detach().clone() for x in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture (cuDNN autotuning, allocations)
            for _ in range(3):
                run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            run()
        with torch.no_grad():  # the warm-up steps leave no trace in weights, statistics or moments
            for x, v in zip(tensors, saved):
                x.copy_(v)

    def __call__(self, idx, lr, t: int) -> None:
        self.idx.copy_(idx)
        self.lr.copy_(lr)
        self.t.fill_(t)
        self.graph.replay()


def step_seconds(models: int, xtr, ytr, batch: int, graph: bool, steps: int = 15) -> float:
    """Measured wall time of one training step of ``models`` models in lockstep (after warm-up)."""
    import torch

    dev = xtr.device
    net = build(models, np.ones(models)).to(dev).to(memory_format=torch.channels_last)
    params = list(net.parameters())
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    g = torch.Generator(device=dev)
    g.manual_seed(0)
    lr = torch.full((models,), 1e-3, device=dev)
    wd = torch.full((models,), Arm.wd, device=dev)  # the value does not change the time
    idx = torch.randint(0, len(xtr), (models, batch), device=dev)
    graphed = GraphedStep(net, params, state, xtr, ytr, models, batch, wd) if graph else None
    step = (lambda t: graphed(idx, lr, t)) if graphed else (lambda t: train_step(net, params, state, xtr, ytr, idx,
                                                                                  g, lr, wd, t))
    for i in range(5):
        step(i + 1)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    for i in range(steps):
        step(i + 6)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.time() - t0) / steps


def run(a: argparse.Namespace) -> None:  # noqa: C901 - the study's whole loop
    import torch

    arms = [Arm.parse(t) for t in a.arm]
    d = unpack(Path(a.data))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    xtr = torch.tensor(d["x_train"], device=dev)
    ytr = torch.tensor(d["y_train"], device=dev)
    xva = torch.tensor(d["x_val"], device=dev, dtype=torch.float32) / 255
    yva = d["y_val"]
    if a.max_val:
        xva, yva = xva[: a.max_val], yva[: a.max_val]
    if a.max_train:  # a random subset: the packed images are sorted by class
        keep = torch.tensor(np.random.default_rng(0).permutation(len(xtr))[: a.max_train], device=dev)
        xtr, ytr = xtr[keep], ytr[keep]
    n = len(xtr)
    spe = math.ceil(n / a.batch)
    graph = a.graph and dev.type == "cuda"
    max_epochs = max(arm.total for arm in arms)
    if a.budget_s:
        # Seeds per arm from measured step times at two sizes (a + b * models), leaving a tenth for evaluation.
        k1, k2 = len(arms), len(arms) * a.seeds
        t1, t2 = step_seconds(k1, xtr, ytr, a.batch, graph), step_seconds(k2, xtr, ytr, a.batch, graph)
        slope = max(1e-9, (t2 - t1) / max(1, k2 - k1))
        fits = lambda s: (t1 + slope * (len(arms) * s - k1)) * spe * max_epochs < 0.9 * a.budget_s
        seeds = next((s for s in range(a.seeds, 1, -1) if fits(s)), 0)
        print(f"step: {t1 * 1e3:.1f} ms for {k1} models, {t2 * 1e3:.1f} ms for {k2}; budget {a.budget_s:.0f} s "
              f"-> {seeds or 'no'} seeds per arm", flush=True)
        if not seeds:  # stop before any training rather than run a study that cannot finish
            need = (t1 + slope * (2 * len(arms) - k1)) * spe * max_epochs
            raise SystemExit(f"{max_epochs} epochs of {spe} steps need about {need:.0f} s even with 2 seeds per arm, "
                             f"over the {a.budget_s:.0f} s budget: give a larger --budget-s or fewer epochs")
        a.seeds = seeds
    owner = np.repeat(np.arange(len(arms)), a.seeds)  # model index -> arm index
    K = len(owner)
    seeds = np.tile(np.arange(a.seeds), len(arms)) + a.seed0
    torch.manual_seed(a.seed0)
    net = build(K, np.array([arms[i].eca for i in owner])).to(dev).to(memory_format=torch.channels_last)
    params = [p for p in net.parameters()]
    with torch.no_grad():  # paired design: seed s starts from the same weights and sees the same order in every arm
        first = torch.tensor(np.tile(np.arange(a.seeds), len(arms)), device=dev)
        for p in params:
            per_model(p, K).copy_(per_model(p, K)[first].clone())
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed0)
    gens = [torch.Generator(device="cpu").manual_seed(int(s) * 7919 + 1) for s in seeds]
    wd = torch.tensor([arms[i].wd for i in owner], device=dev)
    graphed = GraphedStep(net, params, state, xtr, ytr, K, a.batch, wd) if graph else None
    avg: list[torch.Tensor] | None = None
    avg_n = torch.zeros(K, device=dev)
    results: dict = {"arms": [asdict(x) for x in arms], "seeds": [int(s) for s in seeds],
                     "owner": owner.tolist(), "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                     "train_images": n, "val_images": len(yva), "curves": {}, "final": {}}
    out = Path(a.out)

    def evaluate(tag: str) -> None:
        net.eval()
        probs = []
        with torch.no_grad(), torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            for i in range(0, len(xva), 512):
                xb = xva[i:i + 512]
                views = [xb, torch.flip(xb, dims=[2])]
                p = sum(torch.softmax(net(v[:, None].expand(-1, K, -1, -1).contiguous(
                    memory_format=torch.channels_last)).float(), -1) for v in views) / 2
                probs.append(p.cpu().numpy())
        net.train()
        p = np.concatenate(probs)  # (N, K, 7)
        acc = (p.argmax(-1) == yva[:, None]).mean(0) * 100
        pv = np.stack([p[..., VALENCE == v].sum(-1) for v in range(3)], -1)
        vacc = (pv.argmax(-1) == VALENCE[yva][:, None]).mean(0) * 100
        results["curves"][tag] = {"acc": acc.round(2).tolist(), "valence": vacc.round(2).tolist()}
        out.write_text(json.dumps(results, indent=1))

    def summary(tag: str) -> str:
        r = results["curves"][tag]
        parts = []
        for i, arm in enumerate(arms):
            sel = owner == i
            acc, val = np.array(r["acc"])[sel], np.array(r["valence"])[sel]
            sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
            parts.append(f"{arm.name} {acc.mean():.2f}+-{sd:.2f} / {val.mean():.2f}")
        return f"{tag}: " + "; ".join(parts)

    def lr_vector(step: int, epoch: int):
        lr = [lr_at(arms[i], step, spe) if epoch < arms[i].total else 0.0 for i in owner]
        return torch.tensor(lr, device=dev)

    t0 = time.time()
    step = 0
    for epoch in range(max_epochs):
        perms = torch.stack([torch.randperm(n, generator=gg) for gg in gens]).to(dev)  # (K, n)
        te = time.time()
        for b in range(spe):
            idx = perms[:, b * a.batch:(b + 1) * a.batch]  # (K, m)
            if graphed:  # a graph replays full batches: the last one is topped up from the epoch's start
                graphed(torch.cat([idx, perms[:, : a.batch - idx.shape[1]]], 1), lr_vector(step, epoch), step + 1)
            else:
                train_step(net, params, state, xtr, ytr, idx, g, lr_vector(step, epoch), wd, step + 1)
            step += 1
        # End of epoch: SWA snapshots for models in their SWA phase.
        with torch.no_grad():
            swa_now = torch.tensor([float(arms[i].epochs <= epoch < arms[i].total) for i in owner], device=dev)
            if swa_now.any():
                if avg is None:
                    avg = [torch.zeros_like(p) for p in params]
                avg_n += swa_now
                for s_, p in zip(avg, params):
                    w = swa_now / avg_n.clamp(min=1)
                    ps, ss = per_model(p, K), per_model(s_, K)
                    ss.add_(col(w, ss) * (ps - ss))
        e = epoch + 1
        print(f"epoch {e}/{max_epochs} {time.time() - te:.1f} s (elapsed {time.time() - t0:.0f} s)", flush=True)
        if e % a.eval_every == 0 or e == max_epochs or any(e in (arm.epochs, arm.total) for arm in arms):
            evaluate(f"epoch{e}")
            print(summary(f"epoch{e}"), flush=True)
    # Finals: each model's exported weights (its last epoch, or its SWA average with BatchNorm recomputed).
    for i, arm in enumerate(arms):
        results["final"][arm.name] = f"epoch{arm.total}" if not arm.swa else "swa"
    if avg is not None:
        use = torch.tensor([float(arms[i].swa > 0) for i in owner], device=dev)
        bns = [mod for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        kept = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
        with torch.no_grad():
            for s_, p in zip(avg, params):
                ps = per_model(p, K)
                ps.copy_(torch.where(col(use, ps) > 0, per_model(s_, K), ps))
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average, as convert.swa.recompute_batchnorm
            perms = torch.stack([torch.randperm(n, generator=gg) for gg in gens]).to(dev)
            for b in range(spe):
                with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
                    net(augmented_batch(xtr, perms[:, b * a.batch:(b + 1) * a.batch], g))
            for bn, (rm, rv) in zip(bns, kept):  # models without SWA keep their own statistics
                keep = (use[:, None] == 0).expand(K, bn.num_features // K).reshape(-1)
                bn.running_mean.copy_(torch.where(keep, rm, bn.running_mean))
                bn.running_var.copy_(torch.where(keep, rv, bn.running_var))
        evaluate("swa")
        print(summary("swa"), flush=True)
    fin = {}
    for i, arm in enumerate(arms):
        sel = owner == i
        r = results["curves"][results["final"][arm.name]]
        acc, val = np.array(r["acc"])[sel], np.array(r["valence"])[sel]
        fin[arm.name] = {"acc": acc.tolist(), "valence": val.tolist(), "acc_mean": round(float(acc.mean()), 3),
                         "valence_mean": round(float(val.mean()), 3)}
        print(f"FINAL {arm.name} ({results['final'][arm.name]}): 7-class {acc.mean():.2f} "
              f"(seeds {', '.join(f'{v:.2f}' for v in acc)}), valence {val.mean():.2f}", flush=True)
    results["finals"] = fin
    results["seconds"] = round(time.time() - t0, 1)
    out.write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack FER2013 train/val JPEGs into one npz")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path(".gpu/fer.npz"))
    r = sub.add_parser("run", help="train every arm's seeds together and report seed means")
    r.add_argument("--data", default=".gpu/fer.npz")
    r.add_argument("--arm", action="append", required=True,
                   help="NAME:epochs=80,swa=16,swa_lr=3e-4,lr=2e-3,warmup=0.5,eca=1,wd=0.2")
    r.add_argument("--seeds", type=int, default=4, help="seeds per arm")
    r.add_argument("--seed0", type=int, default=0)
    r.add_argument("--batch", type=int, default=128)
    r.add_argument("--eval-every", type=int, default=16)
    r.add_argument("--max-train", type=int, default=0, help="smoke tests: use only N training images")
    r.add_argument("--graph", action="store_true",
                   help="on a GPU: capture the training step as a CUDA graph (full batches: the last of an epoch is "
                   "topped up from its start)")
    r.add_argument("--max-val", type=int, default=0, help="smoke tests: evaluate on the first N val images only")
    r.add_argument("--budget-s", type=float, default=0.0,
                   help="measure step times first and lower --seeds until the study fits this many seconds")
    r.add_argument("--out", default="study.json")
    a = ap.parse_args()
    pack(a.data, a.out) if a.cmd == "pack" else run(a)


if __name__ == "__main__":
    main()
