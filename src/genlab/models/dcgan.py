"""DCGAN (Radford et al., 2015) for 28x28 images: the discriminator is updated first, the generator learns only
from the discriminator's verdict on its own samples, and every usual trick for weakening (or strengthening) the
discriminator is a hyper-parameter, so the mechanics of adversarial training can be watched and steered.

One training step, manual optimization (two optimizers, one batch):

    (1) update D: real batch and G(z).detach() through D, BCE against the (smoothed / flipped) targets (or, with
        g_loss "hinge", the hinge loss), D steps;
    (2) update G: non-saturating loss -log D(G(z)) (or, with g_loss "saturating", the original minimax
        loss log(1 - D(G(z))), whose gradient vanishes when D is confident; with "hinge", -D(G(z))) on generated
        images alone; `generator_step` is never given the real batch, so G's gradient cannot depend on it
        (tests/test_dcgan.py checks both facts).

With `diffaugment`, both passes show D augmented images (DiffAugment, genlab.nets.diffaugment): real and fake alike,
differentiably, so G's gradient flows through the augmentation.

Real and fake images go through D in *separate* forward passes: with batch norm in D, one concatenated pass
would let the real batch's statistics leak into D(G(z)) and hence into G's gradient.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.callbacks.guards import NonFiniteLossError, check_finite  # noqa: F401  (what training_step may raise)
from genlab.models.base import GenlabModule, check_learning_rates
from genlab.nets.dcgan import Discriminator, Generator, dcgan_init
from genlab.nets.diffaugment import diff_augment, parse_policy
from genlab.runtime import eval_mode

D_STRONG_ADVICE = "try real_label 0.9, instance noise, or a lower d_lr"


G_LOSSES = ("non_saturating", "saturating", "hinge")


def generator_loss(fake_logit: Tensor, kind: str = "non_saturating") -> Tensor:
    """G's loss from D's logits l on G(z), to be minimised by G.

    non_saturating: -log D(G(z)) = -log sigmoid(l); d/dl = sigmoid(l) - 1, close to -1 when D rejects G(z).
    saturating: log(1 - D(G(z))) = -softplus(l), the minimax game's own term; d/dl = -sigmoid(l), close to 0
    when D rejects G(z): a confident discriminator leaves the generator no gradient (Goodfellow et al. 2014).
    hinge: -l, the generator's half of the hinge GAN (Lim & Ye 2017; Miyato et al. 2018); d/dl = -1 however
    confident D is (D's half is `discriminator_loss`).
    Written on the logit (softplus, BCE with logits) so that none overflows for a very confident D.
    """
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
    if kind == "saturating":
        return -F.softplus(fake_logit).mean()
    if kind == "hinge":
        return -fake_logit.mean()
    raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}, got {kind!r}")


def discriminator_loss(logit: Tensor, target: Tensor, kind: str = "non_saturating") -> Tensor:
    """D's loss on one batch of logits against targets in [0, 1] (1 real, 0 fake; smoothed or flipped ones between).

    With the BCE losses (g_loss non_saturating or saturating): BCE(sigmoid(l), t).
    With hinge: max(0, 1 - y l), y = 2t - 1, i.e. max(0, 1 - l) for real and max(0, 1 + l) for fake images (Lim &
    Ye 2017): D stops pushing an image once its logit is past the margin. A smoothed real target 0.9 gives y = 0.8,
    a gentler slope and a margin at l = 1.25; a flipped target swaps the two terms.
    """
    if kind == "hinge":
        return F.relu(1 - (2 * target - 1) * logit).mean()
    return F.binary_cross_entropy_with_logits(logit, target)


def grad_norm(module: nn.Module) -> Tensor:
    """L2 norm of all gradients of a module (0 if none)."""
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.cat(grads).float())


class DCGAN(GenlabModule):
    """DCGAN LightningModule: D first, then G; knobs to weaken D; per-step diagnostics; fixed-noise grids.

    Args:
        dataset: the data the model learns ("mnist" or "fashion_mnist"); picks the judge in `genlab evaluate`.
        z_dim: latent size. g_width / d_width: G's channel count, D's channel multiplier (x64 channels).
        g_extra_layers: 3x3 conv blocks added to G at 7x7 (0: the plain DCGAN generator).
        g_loss: "non_saturating" (-log D(G(z)), the usual choice) or "saturating" (log(1 - D(G(z))) minimised,
            the original minimax loss; its gradient vanishes under a confident D: see `generator_loss`), both with
            D's BCE loss; or "hinge": the hinge loss for D and G alike (`discriminator_loss`, `generator_loss`).
        g_lr, d_lr, beta1, beta2: Adam settings (paper: 2e-4, (0.5, 0.999)), separate for G (g_*) and D (d_*).
        d_steps, g_steps: discriminator updates per training step, then generator updates.
        real_label: target for real images in D's loss (one-sided smoothing: 0.9; fake targets stay 0).
        label_flip_prob: probability that each target in D's step is swapped (real <-> fake).
        instance_noise_std: std of Gaussian noise added to every D input (real and fake, images in [-1,1]),
            annealed linearly to 0 over instance_noise_anneal_steps training steps (0: kept constant).
        d_dropout, d_spectral_norm: dropout after D's hidden activations; spectral norm on D's convs.
        d_minibatch_std: give D a minibatch-standard-deviation feature, so that it can spot (and G is pushed
            away from) samples that all look alike; a remedy for missing classes, not a weakening of D.
        diffaugment: differentiable augmentation of every D input, real and fake alike, in D's and G's updates
            (DiffAugment, Zhao et al. 2020): a comma-separated list of "translation" (shifts of up to 1/8 of the
            image) and "cutout" (a zeroed square of half its size), e.g. "translation,cutout"; "" for none.
        r1_gamma: weight of the R1 penalty gamma/2 * E||grad_x D(x)||^2 on real data (Mescheder et al. 2018).
        g_ema_decay: if > 0, sample() uses an exponential moving average of G's weights (0: the live G), with
            the usual warm-up min(decay, (1 + t) / (10 + t)) at step t; batch-norm statistics are copied.
        d_strong_threshold, d_strong_patience: warn when D(G(z)) after D's update stays below the threshold
            for this many consecutive steps (D wins so clearly that G's gradients vanish).
        n_fixed: images in the per-epoch grid drawn from a fixed noise vector (seed fixed_seed).
        channels_last: keep G, D and the images in NHWC memory layout. Same arithmetic; on CPUs oneDNN's convs
            run faster that way.
            "auto": genlab.hardware.resolve_channels_last's rule for the device it trains on.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        z_dim: int = 100,
        g_width: int = 64,
        d_width: float = 1.0,
        g_lr: float = 2e-4,
        d_lr: float = 2e-4,
        g_betas: tuple[float, float] = (0.5, 0.999),
        d_betas: tuple[float, float] = (0.5, 0.999),
        d_steps: int = 1,
        g_steps: int = 1,
        real_label: float = 1.0,
        label_flip_prob: float = 0.0,
        instance_noise_std: float = 0.0,
        instance_noise_anneal_steps: int = 0,
        d_dropout: float = 0.0,
        d_spectral_norm: bool = False,
        d_minibatch_std: bool = False,
        r1_gamma: float = 0.0,
        g_ema_decay: float = 0.0,
        d_strong_threshold: float = 0.05,
        d_strong_patience: int = 200,
        n_fixed: int = 64,
        fixed_seed: int = 1234,
        channels_last: bool | Literal["auto"] = False,
        g_extra_layers: int = 0,
        g_loss: Literal["non_saturating", "saturating", "hinge"] = "non_saturating",
        diffaugment: str = "",
    ):
        super().__init__()
        if g_loss not in G_LOSSES:
            raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}, got {g_loss!r}")
        check_learning_rates(allow_zero=True, g_lr=g_lr, d_lr=d_lr)  # 0 freezes one network
        self._augment = parse_policy(diffaugment)  # checked here: a typo is one line from the CLI, not a crash later
        if g_extra_layers < 0:
            raise ValueError(f"g_extra_layers must be >= 0, got {g_extra_layers}")
        if d_steps < 1 or g_steps < 1:
            raise ValueError(f"d_steps and g_steps must be >= 1, got {d_steps}, {g_steps}")
        if not 0.0 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0, 1], got {real_label}")
        if not 0.0 <= label_flip_prob < 0.5:
            raise ValueError(f"label_flip_prob must be in [0, 0.5), got {label_flip_prob}")
        if not 0.0 <= g_ema_decay < 1.0:
            raise ValueError(f"g_ema_decay must be in [0, 1), got {g_ema_decay}")
        if channels_last == "auto":  # genlab's CLI resolves it first, knowing the accelerator; this is direct use
            from genlab.hardware import resolve_channels_last

            channels_last = resolve_channels_last("auto")[0]
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(z_dim, g_width, extra_layers=g_extra_layers)
        self.discriminator = Discriminator(max(1, round(64 * d_width)), dropout=d_dropout, spectral_norm=d_spectral_norm,
                                           minibatch_std=d_minibatch_std)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if g_ema_decay > 0 else None
        fixed = torch.randn(n_fixed, z_dim, generator=torch.Generator().manual_seed(fixed_seed))
        self.register_buffer("fixed_z", fixed)
        self.register_buffer("gan_step", torch.zeros((), dtype=torch.long))  # own counter: survives resume
        self._strong_streak = 0
        self._warned_strong = False

    # ----------------------------------------------------------------------------------------------- optimizers
    # Under DDP every backward must use every parameter, but D's step uses D alone and G's step leaves D frozen,
    # so the DCGAN needs Lightning's registered "ddp_find_unused_parameters_true" strategy; GenlabCLI reads this
    # flag and maps a plain `--trainer.strategy ddp` to it.
    ddp_find_unused_parameters = True

    def configure_optimizers(self):
        hp = self.hparams
        d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=hp.d_lr, betas=tuple(hp.d_betas))
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=hp.g_lr, betas=tuple(hp.g_betas))
        return [d_opt, g_opt]

    # ----------------------------------------------------------------------------------------------- helpers
    def noise(self, n: int) -> Tensor:
        return torch.randn(n, self.hparams.z_dim, device=self.device)

    def instance_noise_level(self) -> float:
        """Current std of the instance noise: linear from instance_noise_std to 0 over the anneal steps."""
        std, steps = self.hparams.instance_noise_std, self.hparams.instance_noise_anneal_steps
        if std <= 0:
            return 0.0
        if steps <= 0:
            return float(std)
        return float(std) * max(0.0, 1.0 - int(self.gan_step) / steps)

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees during training, real and fake alike: the image augmented (`diffaugment`), plus the current
        instance noise. Both are differentiable, so G's gradient passes through them."""
        x = diff_augment(x, self._augment)
        level = self.instance_noise_level()
        return x + level * torch.randn_like(x) if level > 0 else x

    def d_targets(self, n: int) -> tuple[Tensor, Tensor]:
        """D's targets for n real and n fake images after one-sided smoothing and random flips."""
        hp = self.hparams
        real_t = torch.full((n,), float(hp.real_label), device=self.device)
        fake_t = torch.zeros(n, device=self.device)
        if hp.label_flip_prob > 0:
            flip_r = torch.rand(n, device=self.device) < hp.label_flip_prob
            flip_f = torch.rand(n, device=self.device) < hp.label_flip_prob
            real_t = torch.where(flip_r, torch.zeros_like(real_t), real_t)
            fake_t = torch.where(flip_f, torch.full_like(fake_t, float(hp.real_label)), fake_t)
        return real_t, fake_t

    def _check_finite(self, loss: Tensor, name: str) -> None:
        """The guard's check before each of the two backward passes, counting GAN steps (batches)."""
        check_finite(loss, self, f"{name} loss", int(self.gan_step), "a lower d_lr/g_lr, r1_gamma > 0, d_spectral_norm")

    # ----------------------------------------------------------------------------------------------- the step
    def training_step(self, batch, batch_idx):
        real, _ = batch
        real = real * 2 - 1  # [0,1] -> [-1,1], the range of G's tanh
        if self.hparams.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        n = real.shape[0]
        d_opt, g_opt = self.optimizers()  # Lightning's wrappers: their step() runs the precision plugin

        # (1) update D on real images and on G(z).detach()
        for _ in range(self.hparams.d_steps):
            z = self.noise(n)
            fake = self.generator(z)  # G's graph is kept: the first G step below reuses it (same z)
            d_stats = self.discriminator_step(real, fake.detach(), d_opt)

        # (2) update G through D's verdict on G(z) alone: generator_step never receives the real batch
        for i in range(self.hparams.g_steps):
            if i > 0:
                z, fake = self.noise(n), None
            g_stats = self.generator_step(z, g_opt, fake=fake)

        self.gan_step += 1
        self._watch_discriminator(g_stats["train/d_fake_after"])
        stats = {**d_stats, **g_stats, "train/instance_noise": self.instance_noise_level()}
        shown = ("train/d_loss", "train/g_loss", "train/d_fake_after")
        self.log_dict({k: v for k, v in stats.items() if k not in shown}, on_step=True, on_epoch=False)
        self.log_dict({k: stats[k] for k in shown}, on_step=True, on_epoch=False, prog_bar=True)

    def discriminator_step(self, real: Tensor, fake: Tensor, d_opt) -> dict[str, Tensor]:
        """One D update: loss(D(real), real target) + loss(D(fake), fake target) [+ R1 on real], the loss BCE or
        hinge (`discriminator_loss`)."""
        hp = self.hparams
        with self.toggled_optimizer(d_opt):  # only D's parameters collect gradients
            real_in = self.d_input(real)
            if hp.r1_gamma > 0:
                real_in = real_in.detach().requires_grad_(True)
            real_logit = self.discriminator(real_in)
            fake_logit = self.discriminator(self.d_input(fake))
            real_t, fake_t = self.d_targets(real.shape[0])
            kind = self.hparams.get("g_loss", "non_saturating")
            d_loss = discriminator_loss(real_logit, real_t, kind) + discriminator_loss(fake_logit, fake_t, kind)
            stats = {}
            if hp.r1_gamma > 0:
                (grad,) = torch.autograd.grad(real_logit.sum(), real_in, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                d_loss = d_loss + 0.5 * hp.r1_gamma * r1
                stats["train/r1"] = r1.detach()
            self._check_finite(d_loss, "discriminator")
            d_opt.zero_grad(set_to_none=True)
            # manual_backward (not loss.backward) and d_opt.step() on Lightning's wrapper: under 16-mixed the
            # precision plugin scales this loss and unscales/steps through the one GradScaler; a bare
            # torch optimizer would step on scaled gradients and skip the inf/NaN checks.
            self.manual_backward(d_loss)
            d_opt.step()
            stats["train/d_grad_norm"] = grad_norm(self.discriminator)  # after step(): unscaled under AMP
        stats.update(
            {
                "train/d_loss": d_loss.detach(),
                "train/d_real": torch.sigmoid(real_logit.detach().float()).mean(),
                "train/d_fake_before": torch.sigmoid(fake_logit.detach().float()).mean(),
            }
        )
        return stats

    def generator_step(self, z: Tensor, g_opt, fake: Tensor | None = None) -> dict[str, Tensor]:
        """One G update with `generator_loss` (non-saturating -log D(G(z)) by default). Takes the noise (and optionally G(z)
        already computed from that same z, to save a forward pass), never a real image."""
        with self.toggled_optimizer(g_opt):  # D is frozen here: no dangling gradients on D
            if fake is None:
                fake = self.generator(z)
            fake_logit = self.discriminator(self.d_input(fake))  # D as just updated in (1)
            g_loss = generator_loss(fake_logit, self.hparams.get("g_loss", "non_saturating"))
            self._check_finite(g_loss, "generator")
            g_opt.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)  # see discriminator_step: the shared scaler must see both optimizers
            g_opt.step()
            norm = grad_norm(self.generator)
        self._update_ema()
        return {
            "train/g_loss": g_loss.detach(),
            "train/g_grad_norm": norm,
            "train/d_fake_after": torch.sigmoid(fake_logit.detach().float()).mean(),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        # warm-up: early on, average over the steps taken so far rather than over the random initial weights
        step = int(self.gan_step)
        decay = min(self.hparams.g_ema_decay, (1 + step) / (10 + step))
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    def _watch_discriminator(self, d_fake_after: Tensor) -> None:
        """Warn (once per streak) when D(G(z)) stays under the threshold: G's gradients are vanishing."""
        if float(d_fake_after) < self.hparams.d_strong_threshold:
            self._strong_streak += 1
        else:
            self._strong_streak, self._warned_strong = 0, False
        if self._strong_streak >= self.hparams.d_strong_patience and not self._warned_strong:
            self._warned_strong = True
            warnings.warn(
                f"DCGAN step {int(self.gan_step)}: D(G(z)) < {self.hparams.d_strong_threshold} for "
                f"{self._strong_streak} consecutive steps -- discriminator too strong, generator gradients "
                f"vanishing: {D_STRONG_ADVICE}.",
                UserWarning,
                stacklevel=2,
            )

    # ----------------------------------------------------------------------------------------------- outputs
    def sampling_generator(self) -> Generator:
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """G(z) in [0,1], in eval mode (batch norm uses its running statistics), training mode restored."""
        with eval_mode(self.sampling_generator()) as g:
            out = g(z.to(self.device))
        return ((out.float() + 1) / 2).clamp_(0, 1)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """n images [n,1,28,28] in [0,1] from N(0, I) noise (seeded: the same seed gives the same images)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.hparams.z_dim, generator=gen)
        return torch.cat([self.generate(chunk) for chunk in z.split(1000)])

    def on_train_epoch_end(self) -> None:
        """The grid from the fixed noise vector, so that epochs can be compared image by image."""
        from genlab.figures.gan import square_grid
        from genlab.reporting import log_image, never_fatal

        with never_fatal(self, "fixed-noise sample grids"):  # a picture must not cost the run
            log_image(self.trainer, "samples_fixed_noise", square_grid(self.generate(self.fixed_z)),
                      caption=f"epoch {self.current_epoch}, fixed noise")
