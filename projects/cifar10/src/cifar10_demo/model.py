"""A fast CIFAR-10 network and recipe of the airbench family (Jordan, arXiv 2404.00498),
written for litforge: the steps, metrics and diagnostics come from BaseModel.

Network: a frozen 2x2 patch-whitening conv (3 -> 24 channels, its bias trained for the first
epochs), three blocks conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU (no residuals,
identity-initialised filters), a global max pool and a bias-free linear head whose logits are
scaled by 1/9. BatchNorm weights are frozen at 1; its biases learn at 64x the learning rate.
Optimiser: Nesterov SGD on the label-smoothed cross-entropy; warm-up then linear decay. With
``optimizer: muon`` (airbench94_muon, configs/muon.yaml) the conv filters are trained by Muon.
Test-time augmentation: the mean of logits over flips and 1-pixel shifts.

Every input arrives as an argument: ``num_classes`` and ``batch_size`` are linked from the data
module by the CLI, the whitening is fitted on the first training batch, and the schedule's
length is the trainer's step count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litforge import ClassificationExample, ClassificationPrediction, Classifier

TTA = Literal["none", "flip", "flip_translate"]
Optimizer = Literal["sgd", "muon"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]


def orthogonalize(g: Tensor, steps: int, dtype: torch.dtype) -> Tensor:
    """The nearest semi-orthogonal matrix to ``g`` (2-D), approximately: a quintic Newton-Schulz
    iteration whose coefficients favour speed over convergence (Jordan et al., Muon, 2024)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class MuonSGD(torch.optim.Optimizer):
    """Nesterov SGD, and Muon for the groups marked ``muon=True`` (airbench94_muon's conv rule).

    A Muon group's parameters (conv filters, each followed by BatchNorm, so that only their
    direction matters) are first rescaled to norm sqrt(out_channels), then moved by ``lr`` along
    the orthogonalized Nesterov momentum of their gradient, flattened to (out, in * kh * kw).
    ``torch.optim.Muon`` takes only 2-D parameters and does not rescale, and Lightning's automatic
    optimization steps one optimizer: hence one optimizer for both rules.
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float,
        weight_decay: float = 0.0,
        muon: bool = False,
        ns_steps: int = 3,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, muon=muon)
        super().__init__(params, defaults)
        self.ns_steps, self.ns_dtype = ns_steps, ns_dtype

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, m, muon = group["lr"], group["momentum"], group["muon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] and not muon:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(m).add_(g)
                update = g.add(buf, alpha=m)  # Nesterov
                if muon:
                    p.mul_(len(p) ** 0.5 / p.norm())
                    # bf16 on a GPU, as airbench94_muon; fp32 on a CPU, where bf16 matrix
                    # products are many times slower without AVX512_BF16
                    dtype = self.ns_dtype or (torch.bfloat16 if p.is_cuda else torch.float32)
                    update = orthogonalize(update.flatten(1), self.ns_steps, dtype)
                    update = update.view_as(p)
                p.add_(update, alpha=-lr)
        return loss


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with its scale frozen at 1 (only the shift learns)."""

    def __init__(self, channels: int, momentum: float, eps: float = 1e-12) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad = False


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            BatchNorm(c_out, bn_momentum),
            nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            BatchNorm(c_out, bn_momentum),
            nn.GELU(),
        )


class Net(nn.Module):
    def __init__(
        self,
        widths: tuple[int, int, int],
        whiten_width: int,
        bn_momentum: float,
        num_classes: int,
        logit_scale: float,
        head_std: float | None = None,
    ) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, whiten_width, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        blocks, c_in = [], whiten_width
        for w in widths:
            blocks.append(ConvBlock(c_in, w, bn_momentum))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        if head_std is not None:
            self.head.weight.data *= head_std / self.head.weight.data.std()
        self.logit_scale = logit_scale
        for m in self.blocks.modules():
            if isinstance(m, nn.Conv2d):  # identity on the first in-channels: a residual-like start
                filters = m.weight.data
                torch.nn.init.dirac_(filters[: filters.shape[1]])

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.whiten(x))
        x = self.blocks(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.logit_scale

    @torch.no_grad()
    def init_whitening(self, images: Tensor, eps: float = 5e-4) -> None:
        """Filters = eigenvectors of the covariance of 2x2 patches, scaled by 1/sqrt(eigenvalue
        + eps), and their negations."""
        c, h, w = self.whiten.weight.shape[1:]
        patches = images.float().unfold(2, h, 1).unfold(3, w, 1)  # N C H' W' h w
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, h, w)
        n = self.whiten.weight.shape[0] // 2
        filters = filters.flip(0)[:n]  # the largest eigenvalues first
        self.whiten.weight.copy_(torch.cat([filters, -filters]))


class Cifar10Model(Classifier):
    """airbench's network and recipe through litforge's Classifier.

    Args:
        num_classes: linked from the data module.
        batch_size: linked from ``data.batch_size``: the learning rate is per example.
        widths: channels of the three blocks.
        whiten_width: channels of the frozen 2x2 whitening conv (half of them negations).
        bn_momentum: BatchNorm momentum (torch's convention).
        logit_scale: the logits are multiplied by this.
        label_smoothing: of the cross-entropy.
        lr: per 1024 examples, airbench's convention (scaled to the batch here).
        weight_decay: per 1024 examples, as the lr.
        momentum: Nesterov momentum.
        bias_lr_scale: BatchNorm biases learn this much faster (same absolute decay).
        warmup: fraction of steps where the lr rises linearly from ``lr_start`` to 1.
        lr_start: the lr multiplier at the first step.
        lr_end: the lr multiplier at the last step.
        whiten_bias_epochs: epochs after which the whitening bias is frozen.
        optimizer: 'sgd' (airbench94: Nesterov SGD for all) or 'muon' (airbench94_muon: Muon
            for the conv filters, Nesterov SGD at ``lr`` for the head and at ``lr *
            bias_lr_scale`` for the biases, the whitening bias among them).
        muon_lr: the filters' step per 1024 examples (scaled to the batch), with 'muon'.
        muon_momentum: the filters' Nesterov momentum, with 'muon'.
        head_std: the head's initial weights rescaled to this std (None: PyTorch's init).
        tta: test-time augmentation of validation, test and predict.
        channels_last: run the convolutions in channels-last memory format.
        compile: torch.compile the network (its forward and backward; in place: the
            checkpoint's keys are those of the plain network).
        compile_mode: torch.compile's mode. 'reduce-overhead' captures the compiled forward and
            backward in CUDA graphs on a GPU: a step's hundreds of kernel launches become a few
            graph launches, so the host's time per step (the Trainer's included) falls below
            the GPU's (on a CPU it is 'default'). The GPU recipe (``configs/default.yaml``)
            sets it; ``tests/test_compile.py`` checks that the compiled step trains the same
            weights as the plain one.
    """

    def __init__(
        self,
        num_classes: int = 10,
        batch_size: int = 1024,
        widths: tuple[int, int, int] = (64, 256, 256),
        whiten_width: int = 24,
        bn_momentum: float = 0.4,
        logit_scale: float = 1 / 9,
        label_smoothing: float = 0.2,
        lr: float = 11.5,
        weight_decay: float = 0.0153,
        momentum: float = 0.85,
        bias_lr_scale: float = 64.0,
        warmup: float = 0.23,
        lr_start: float = 0.2,
        lr_end: float = 0.07,
        whiten_bias_epochs: float = 3.0,
        optimizer: Optimizer = "sgd",
        muon_lr: float = 0.123,
        muon_momentum: float = 0.6,
        head_std: float | None = None,
        tta: TTA = "flip_translate",
        channels_last: bool = True,
        compile: bool = False,
        compile_mode: CompileMode = "default",
    ) -> None:
        super().__init__(num_classes, label_smoothing)
        self.batch_size = batch_size
        self.net = Net(widths, whiten_width, bn_momentum, num_classes, logit_scale, head_std)
        self.lr, self.weight_decay, self.momentum = lr, weight_decay, momentum
        self.bias_lr_scale = bias_lr_scale
        self.warmup, self.lr_start, self.lr_end = warmup, lr_start, lr_end
        self.whiten_bias_epochs = whiten_bias_epochs
        self.optimizer, self.muon_lr, self.muon_momentum = optimizer, muon_lr, muon_momentum
        self.tta = tta
        self.channels_last = channels_last
        self.compile, self.compile_mode = compile, compile_mode
        self._compiled = False
        self.register_buffer("whitened", torch.tensor(False))
        self._whitened_seen = False  # the buffer was read true in this fit (on_train_batch_start)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def configure_model(self) -> None:
        if self.compile and not self._compiled:
            self.net.compile(mode=self.compile_mode)
            self._compiled = True

    def _graphed(self) -> bool:
        """Whether the network's outputs live in CUDA graph memory, which the next replay
        overwrites: a kept output (the training metrics' inputs) must be a copy."""
        return self._compiled and self.compile_mode != "default" and self.device.type == "cuda"

    # ---------------------------------------------------------------- forward and loss
    def logits(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.net(x)
        return out.clone() if self._graphed() else out

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        x = example.image
        if self.training or self.tta == "none":
            return ClassificationPrediction(self.logits(x))
        logits = 0.5 * (self.logits(x) + self.logits(x.flip(-1)))
        if self.tta == "flip_translate":
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            h, w = x.shape[-2:]
            shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
            translated = sum(0.5 * (self.logits(s) + self.logits(s.flip(-1))) for s in shifted) / 2
            logits = 0.5 * logits + 0.5 * translated
        return ClassificationPrediction(logits.float())

    # ---------------------------------------------------------------- the recipe's hooks
    def on_train_batch_start(self, batch: ClassificationExample, batch_idx: int) -> None:  # type: ignore[override]
        # The first step of a run fits the whitening on its batch. The buffer (checkpointed: a
        # resumed run keeps its whitening) is read once per fit, not every step: reading a
        # device tensor on the host waits for the GPU.
        if not self._whitened_seen:
            if not bool(self.whitened):
                self.net.init_whitening(batch.image)
                self.whitened.fill_(True)
            self._whitened_seen = True
        steps_per_epoch = max(1, self.trainer.num_training_batches)
        train_bias = self.trainer.global_step < self.whiten_bias_epochs * steps_per_epoch
        self.net.whiten.bias.requires_grad_(train_bias)  # type: ignore[union-attr]

    def on_fit_start(self) -> None:
        self._whitened_seen = False  # a checkpoint may have been loaded: read the buffer again

    def configure_optimizers(self) -> Any:
        # The schedule reads the step count each step: a time budget may move it (BudgetGuard).
        # Without a trainer (a copy timed to plan a budget) the schedule is never stepped.
        optimizer, scheduler = self.build_optimizer(
            lambda: int(self.trainer.estimated_stepping_batches) if self._trainer else 1
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def build_optimizer(
        self, total_steps: int | Callable[[], int]
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """The optimizer (Nesterov SGD, with Muon for the filters if chosen) and its warm-up /
        linear-decay schedule over ``total_steps`` (a number, or a callable read at every step)."""
        batch = self.batch_size
        # airbench's units: lr per 1024 examples of a summed loss, divided by 1 + 1/(1-momentum).
        # A mean loss over `batch` examples takes `batch` times that lr.
        kilostep = 1024 * (1 + 1 / (1 - self.momentum))
        lr = self.lr / kilostep * batch
        decay = self.weight_decay * batch / kilostep  # the absolute decay per step
        named = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        muon = self.optimizer == "muon"
        # airbench94: the BatchNorm biases at bias_lr; airbench94_muon: the whitening bias too
        biases = [
            p for n, p in named if p.ndim == 1 and ("blocks" in n or (muon and n == "whiten.bias"))
        ]
        filters = [p for n, p in named if "blocks" in n and p.ndim == 4]
        ids = {id(p) for p in biases + (filters if muon else [])}
        others = [p for n, p in named if id(p) not in ids]
        bias_lr = lr * self.bias_lr_scale
        groups: list[dict[str, Any]] = [
            {"params": biases, "lr": bias_lr, "weight_decay": decay / bias_lr},
            {"params": others, "lr": lr, "weight_decay": decay / lr},
        ]
        if muon:
            muon_lr = self.muon_lr / 1024 * batch
            groups.append(
                {"params": filters, "lr": muon_lr, "momentum": self.muon_momentum, "muon": True}
            )
            optimizer: torch.optim.Optimizer = MuonSGD(groups, lr=lr, momentum=self.momentum)
        else:
            optimizer = torch.optim.SGD(groups, momentum=self.momentum, nesterov=True)

        def multiplier(step: int) -> float:
            total = max(1, total_steps() if callable(total_steps) else total_steps)
            warm = max(1, int(self.warmup * total))
            if step < warm:
                return self.lr_start + (1 - self.lr_start) * step / warm
            return 1 + (self.lr_end - 1) * (step - warm) / max(1, total - warm)

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
