"""Sample quality without downloads: a Frechet distance on a small classifier's features.

The Inception network behind the usual FID is trained on ImageNet and must be downloaded;
for 8x8 digits it would also be the wrong yardstick. Instead a small CNN is trained once on
the run's own data set (the same pixels and labels), cached on disk by a hash of them, and
its penultimate features stand in for Inception's. Three numbers come out:

- `fid`: the Frechet distance between the features of `n` samples and of a real reference
  half of the data set; `fid_floor`: the same distance for `n` real images of the other half
  (real vs real: the best a model can hope for at this `n`, as FID is biased by `n`).
- `confident_fraction`: the share of samples the classifier labels with probability > 0.9,
  and `class_coverage`: the share of classes among those confident labels.
- `class_accuracy` (class-conditional samples): the share the classifier assigns to the class
  they were asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlrun.core.checkpoint import load_checkpoint, save_checkpoint
from rlrun.core.errors import ConfigError

CONFIDENT = 0.9
VERSION = 1  # bump when the classifier or its training changes (old cache entries are ignored)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/rlrun/fid, else ~/.cache/rlrun/fid."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlrun" / "fid"


class Classifier(nn.Module):
    """Three 3x3 convs (the last two strided), global average pooling, a linear head."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)


def train_classifier(x: torch.Tensor, y: torch.Tensor, n_classes: int, steps: int = 1500,
                     seed: int = 0) -> tuple[Classifier, float]:
    """Fit on 90% of (x, y), report accuracy on the other 10%. Its own generator: training
    it (or loading it from the cache) leaves the run's RNG streams untouched."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Classifier(x.shape[1], n_classes)
    perm = torch.randperm(len(x), generator=g)
    n_val = max(1, len(x) // 10)
    val, tr = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = tr[torch.randint(0, len(tr), (128,), generator=g)]
        xb = x[idx]
        shift = torch.randint(-1, 2, (2,), generator=g).tolist()  # +-1 pixel jitter
        xb = torch.roll(xb, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(net(xb)[1], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(x[val])[1].argmax(1) == y[val]).float().mean())
    return net, acc


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the trace term from the eigenvalues of
    the symmetric PSD matrix S1^(1/2) S2 S1^(1/2) (stable, no scipy needed)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(w.clip(min=0))) @ v.T
    cross = np.linalg.eigvalsh(r1 @ s2 @ r1).clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.sqrt(cross).sum())


def check_labels(data: Any) -> None:
    """The classifier needs labels of at least two classes: say so before training starts."""
    if data.labels is None or data.n_classes < 2:
        raise ConfigError(
            f"env={data.name} has no class labels, which the FID classifier needs: put the"
            " images in one sub-folder per class, or set algo.eval_samples=0")


class FidEvaluator:
    """Classifier features of the real data, split in two halves, ready to score samples."""

    def __init__(self, data: Any, cache_dir: str | Path | None = None, batch: int = 500,
                 train_steps: int = 1500):
        check_labels(data)
        self.batch = batch
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        dims = "x".join(map(str, data.images.shape[1:]))
        path = cache / f"{data.name}_{dims}_{data.fingerprint()}_{train_steps}_v{VERSION}.pt"
        if path.is_file():
            state = load_checkpoint(path)
            self.net = Classifier(data.images.shape[1], data.n_classes)
            self.net.load_state_dict(state["model"])
            self.accuracy = float(state["accuracy"])
        else:
            self.net, self.accuracy = train_classifier(data.images, data.labels,
                                                       data.n_classes, train_steps)
            save_checkpoint(path, {"model": self.net.state_dict(), "accuracy": self.accuracy})
        self.net.eval().requires_grad_(False)
        self.cache_path, self.n_classes = path, data.n_classes
        perm = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))
        half = len(perm) // 2
        self.ref = self.features(data.images[perm[:half]])[0]
        self.other = data.images[perm[half:]]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(features, class probabilities) of images in [-1, 1], on the CPU."""
        fs, ps = [], []
        for chunk in x.detach().float().cpu().split(self.batch):
            f, logits = self.net(chunk)
            fs.append(f)
            ps.append(logits.softmax(1))
        return torch.cat(fs).double().numpy(), torch.cat(ps).double().numpy()

    def floor(self, n: int) -> float:
        """Real vs real at the same n: the distance of n held-out real images."""
        return frechet_distance(self.features(self.other[:n])[0], self.ref)

    def evaluate(self, samples: torch.Tensor, labels: Any = None) -> dict[str, Any]:
        """FID, its floor, confident fraction, class coverage and the confident label counts;
        with the `labels` the samples were asked for (a class-conditional model), also
        `class_accuracy`: the share the classifier assigns to their class (its argmax)."""
        f, p = self.features(samples)
        n = len(samples)
        conf = p.max(1) > CONFIDENT
        counts = np.bincount(p.argmax(1)[conf], minlength=self.n_classes)
        real_p = self.features(self.other[:n])[1]
        out = {"fid": frechet_distance(f, self.ref), "fid_floor": self.floor(n),
               "fid_samples": n, "floor_samples": min(n, len(self.other)),
               "confident_fraction": float(conf.mean()),
               "confident_fraction_real": float((real_p.max(1) > CONFIDENT).mean()),
               "class_coverage": float((counts > 0).mean()),
               "classifier_accuracy": self.accuracy, "class_counts": counts.tolist()}
        if labels is not None:
            asked = np.asarray(torch.as_tensor(labels).cpu())
            out["class_accuracy"] = float((p.argmax(1) == asked).mean())
        return out
