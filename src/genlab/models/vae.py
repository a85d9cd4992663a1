"""A variational autoencoder with a (default) 2-D latent space, whose latent space can be seen and explored.

Everything is measured per image in nats, summed over the 784 pixels (the networks and the losses are in
genlab.nets.vae; the pictures in genlab.figures.vae):
    recon    = -log p(x|z)           (likelihood "bernoulli": binary cross-entropy on logits; on continuous pixels
                                      these are soft targets and the figure is NOT a likelihood of [0, 1] pixels;
                                      "continuous_bernoulli" adds the normaliser and is a proper density)
    kl       = KL(q(z|x) || p(z))    (closed form for prior "gaussian" = N(0, I); for prior "vamp" the one-sample
                                      estimate log q(z|x) - log p(z), p the mixture at the learned pseudo-inputs)
    neg_elbo = recon + kl             (an upper bound on -log p(x))
    iwae_nll = -log (1/k) sum_i p(x, z_i) / q(z_i|x)  (the IWAE bound, tighter as k grows; with every option)
Training minimises neg_elbo (objective "elbo") or the IWAE bound with iwae_k samples (objective "iwae").
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from genlab.models.base import GenlabModule, check_learning_rates
from genlab.nets.vae import (
    VampPrior,
    build_networks,
    continuous_bernoulli_mean,
    gaussian_kl,
    gaussian_log_prob,
    iwae_bound,
    mixture_log_prob,
    pixel_log_likelihood,
    standard_normal_log_prob,
)
from genlab.optim import make_scheduler
from genlab.runtime import attached_trainer, eval_mode

EXPLORER_IMAGES = 5000  # validation images encoded for the explorer's scatter (the page draws at most 2000)
TABLE_ROWS = 500  # rows of the W&B scatter table: each carries a thumbnail, so it stays small


class VAE(GenlabModule):
    """Variational autoencoder on 28x28 images with Bernoulli (or continuous Bernoulli) pixels.

    Args:
        arch: "mlp" (dense encoder and decoder) or "conv" (strided convolutions / transposed convolutions).
        latent_dim: size of z; 2 gives the latent grid and scatter pictures directly.
        hidden: dense layer widths of the encoder (the decoder uses them reversed).
        channels: the two convolution widths of arch="conv".
        act: activation ("relu", "silu", "gelu", "elu", "tanh").
        beta: weight on the KL term of the training loss (1 = the ELBO; metrics always use beta=1).
        kl_warmup_epochs: the KL weight grows linearly from 0 to beta over this many epochs (0 = off).
        lr, weight_decay: AdamW.
        schedule: "onecycle" (warm-up then cosine annealing), "cosine" (linear warm-up then cosine) or "constant".
        warmup_frac: fraction of the training steps spent warming up the learning rate.
        val_iwae_k, val_iwae_images: IWAE bound on the first images of the validation set each epoch (0 = off),
            logged as val/iwae_nll_k{k} with val/iwae_gain_k{k}, the one-sample neg ELBO minus it on those images.
        test_iwae_k: IWAE bound on the whole test set in `genlab test` (0 = off).
        grid_size: the latent grid is grid_size x grid_size decoded images.
        figures_every_n_epochs: render and log the five pictures every N validation epochs (0 = never).
        interpolate_from, interpolate_to: the classes (labels) whose representative images the interpolation joins.
        dataset: the data the model is trained on ("mnist" or "fashion_mnist"), used by `genlab evaluate`.
        prior: "gaussian" (N(0, I)) or "vamp" (VampPrior, Tomczak & Welling 2018: the encoder's posteriors at
            n_pseudo_inputs learned pseudo-inputs, mixed in equal parts).
        objective: "elbo" or "iwae" (train on the importance-weighted bound with iwae_k samples, Burda et al.
            2016; val/loss is then that bound on the validation images).
        likelihood: "bernoulli" or "continuous_bernoulli" (Loaiza-Ganem & Cunningham 2019: a proper density of
            pixels in [0, 1]; pictures then show its mean, not sigmoid(logits)).
    """

    def __init__(
        self,
        arch: Literal["mlp", "conv"] = "mlp",
        latent_dim: int = 2,
        hidden: tuple[int, ...] = (512, 512, 512),
        channels: tuple[int, ...] = (32, 64),
        act: str = "relu",
        beta: float = 1.0,
        kl_warmup_epochs: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_frac: float = 0.05,
        val_iwae_k: int = 64,
        val_iwae_images: int = 500,
        test_iwae_k: int = 100,
        grid_size: int = 20,
        figures_every_n_epochs: int = 1,
        interpolate_from: int = 9,
        interpolate_to: int = 8,
        dataset: str = "mnist",
        prior: Literal["gaussian", "vamp"] = "gaussian",
        n_pseudo_inputs: int = 500,
        objective: Literal["elbo", "iwae"] = "elbo",
        iwae_k: int = 5,
        likelihood: Literal["bernoulli", "continuous_bernoulli"] = "bernoulli",
    ):
        super().__init__()
        hidden, channels = [int(h) for h in hidden], [int(c) for c in channels]
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0 (the KL term's weight; 1 = the ELBO), got {beta}")
        check_learning_rates(lr=lr)
        if schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'constant', got {schedule!r}")
        if prior not in ("gaussian", "vamp"):
            raise ValueError(f"prior must be 'gaussian' or 'vamp', got {prior!r}")
        if objective not in ("elbo", "iwae"):
            raise ValueError(f"objective must be 'elbo' or 'iwae', got {objective!r}")
        if likelihood not in ("bernoulli", "continuous_bernoulli"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'continuous_bernoulli', got {likelihood!r}")
        if iwae_k < 1:
            raise ValueError(f"iwae_k must be >= 1 (importance samples per image), got {iwae_k}")
        self.save_hyperparameters()
        self.hparams.hidden, self.hparams.channels = hidden, channels  # lists, not tuples, in the checkpoint
        self.encoder, self.decoder = build_networks(arch, latent_dim, hidden, channels, act)
        # Only the VampPrior has parameters: a Gaussian-prior checkpoint keeps exactly the keys it always had.
        self.vamp = VampPrior(n_pseudo_inputs) if prior == "vamp" else None
        self._val_store: dict[str, list[Tensor]] = {}
        self._train_sums: Tensor | None = None  # running sums of (recon, kl) over the epoch's batches
        self._train_batches = 0

    # --- the model ------------------------------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Logits [N,1,28,28] of p(x|z) (Bernoulli or continuous Bernoulli; pixel_means turns them into images)."""
        return self.decoder(z)

    def pixel_means(self, logits: Tensor) -> Tensor:
        """The decoded image in [0, 1]: E[x|z] of the likelihood (sigmoid(logits) for the Bernoulli)."""
        if self.hparams.likelihood == "continuous_bernoulli":
            return continuous_bernoulli_mean(logits)
        return torch.sigmoid(logits)

    def log_likelihood(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) per image (any leading shape of logits; x broadcasts against it)."""
        return pixel_log_likelihood(logits, x, self.hparams.likelihood)

    def prior_components(self) -> tuple[Tensor, Tensor] | None:
        """(mu, logvar) [K, D] of the VampPrior's mixture; None for the Gaussian prior."""
        return None if self.vamp is None else self.vamp.components(self.encoder)

    def log_prior(self, z: Tensor, components: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """log p(z) over the last dimension of z. `components`: prior_components(), computed once by a caller that
        evaluates many z (the VampPrior runs the encoder on its pseudo-inputs to get them)."""
        if self.vamp is None:
            return standard_normal_log_prob(z)
        if components is None:
            components = self.prior_components()
        return mixture_log_prob(z, *components)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> dict[str, Tensor]:
        """One-sample ELBO terms per image: recon, kl, neg_elbo (all [B]) and mu, logvar, logits.

        noise: the standard-normal draw [B, D] of the reparameterisation (default: a fresh one). The KL term is
        exact for the Gaussian prior, and log q(z|x) - log p(z) at the sampled z for the VampPrior."""
        mu, logvar = self.encoder(x)
        eps = torch.randn_like(mu) if noise is None else noise
        z = mu + eps * torch.exp(0.5 * logvar)  # reparameterisation
        logits = self.decoder(z)
        recon = -self.log_likelihood(logits, x)
        kl = gaussian_kl(mu, logvar) if self.vamp is None else gaussian_log_prob(z, mu, logvar) - self.log_prior(z)
        return {"recon": recon, "kl": kl, "neg_elbo": recon + kl, "mu": mu, "logvar": logvar, "logits": logits}

    def log_weights(self, x: Tensor, noise: Tensor, posterior: tuple[Tensor, Tensor] | None = None,
                    components: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(log p(x|z), log p(z), log q(z|x)), each [k, B], at z = mu + noise * std for noise [k, B, D]; their sum
        log p(x|z) + log p(z) - log q(z|x) is the log importance weight. `posterior`: (mu, logvar) of x when the
        caller has them already."""
        mu, logvar = self.encoder(x) if posterior is None else posterior
        z = mu + noise * torch.exp(0.5 * logvar)  # [k, B, D]
        logits = self.decoder(z.flatten(0, 1)).view(len(noise), *x.shape)  # [k, B, 1, 28, 28]
        return self.log_likelihood(logits, x), self.log_prior(z, components), gaussian_log_prob(z, mu, logvar)

    @torch.no_grad()
    def iwae_nll(self, x: Tensor, k: int, chunk: int = 100_000, generator: torch.Generator | None = None) -> Tensor:
        """-log p(x) estimated with k importance samples from q(z|x), per image [B] (k=1 is the one-sample ELBO),
        with this model's likelihood and prior.

        The decoder sees at most `chunk` latent codes at once and the k weights are folded into a running
        logsumexp, so memory does not grow with k (k=5000 over a batch of 100 images runs in about 100 MB)."""
        posterior = self.encoder(x)
        components = self.prior_components()
        acc = torch.full((len(x),), float("-inf"), device=x.device)
        step = max(1, chunk // max(1, len(x)))
        for start in range(0, k, step):
            n = min(step, k - start)
            noise = torch.randn((n, *posterior[0].shape), device=x.device, generator=generator)
            log_px, log_pz, log_qz = self.log_weights(x, noise, posterior, components)
            acc = torch.logaddexp(acc, torch.logsumexp(log_px + log_pz - log_qz, dim=0))
        return -(acc - math.log(k))

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """n decoded prior samples [n,1,28,28] in [0,1] (pixel means, not pixel draws). The VampPrior draws a
        component uniformly, then z from it."""
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(seed)
        eps = torch.randn(n, self.hparams.latent_dim, device=self.device, generator=gen)
        if self.vamp is None:
            z = eps
        else:
            mu, logvar = self.prior_components()
            pick = torch.randint(len(mu), (n,), device=self.device, generator=gen)
            z = mu[pick] + eps * torch.exp(0.5 * logvar[pick])
        return self.pixel_means(self.decoder(z))

    # --- training -------------------------------------------------------------------------------------------

    def kl_weight(self) -> float:
        """beta, scaled by the linear KL warm-up while it lasts."""
        beta, warm = self.hparams.beta, self.hparams.kl_warmup_epochs
        if warm <= 0 or attached_trainer(self) is None:
            return beta
        steps = max(1.0, warm * max(1, self.trainer.num_training_batches))
        return beta * min(1.0, (self.global_step + 1) / steps)

    def _iwae_terms(self, x: Tensor, k: int, weight: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss at the KL weight `weight`, the bound's value at weight 1, recon, kl) of the IWAE objective with k
        reparameterised samples, batch means. The KL weight scales log p(z) - log q(z|x) inside each weight."""
        mu, logvar = self.encoder(x)
        noise = torch.randn((k, *mu.shape), device=x.device, dtype=mu.dtype)
        log_px, log_pz, log_qz = self.log_weights(x, noise, (mu, logvar))
        loss = -iwae_bound(log_px + weight * (log_pz - log_qz)).mean()
        bound = loss if weight == 1.0 else -iwae_bound(log_px + log_pz - log_qz).mean()
        return loss, bound, -log_px.mean(), (log_qz - log_pz).mean()

    def training_step(self, batch, batch_idx):
        x, _ = batch
        if self.hparams.objective == "iwae":
            loss, bound, recon, kl = self._iwae_terms(x, self.hparams.iwae_k, self.kl_weight())
        else:
            out = self(x)
            recon, kl = out["recon"].mean(), out["kl"].mean()
            loss, bound = recon + self.kl_weight() * kl, recon + kl
        # Epoch means only, summed on the device here and logged once per epoch: no per-step host syncs and no
        # per-step logging machinery in the hot loop (see on_train_epoch_end).
        sums = torch.stack([bound.detach(), recon.detach(), kl.detach()])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_batches += 1
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_batches = None, 0

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        loss, recon, kl = (self._train_sums / self._train_batches).unbind()
        self.log_dict({"train/loss": loss, "train/recon": recon, "train/kl": kl, "train/kl_weight":
                       torch.tensor(self.kl_weight())}, sync_dist=True)

    def _eval_step(self, batch, stage: str) -> dict[str, Tensor]:
        x, y = batch
        out = self(x)
        loss = out["neg_elbo"].mean()
        if self.hparams.objective == "iwae":  # the objective trained on, so early stopping follows it
            loss = self._iwae_terms(x, self.hparams.iwae_k)[1]
        metrics = {
            f"{stage}/loss": loss,
            f"{stage}/neg_elbo": out["neg_elbo"].mean(),
            f"{stage}/recon": out["recon"].mean(),
            f"{stage}/kl": out["kl"].mean(),
        }
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(x))
        return out

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self._eval_step(batch, "val")
        k, n_iwae = self.hparams.val_iwae_k, self.hparams.val_iwae_images
        seen = sum(len(t) for t in self._val_store.get("x", []))
        if k > 0 and batch_idx * len(x) < n_iwae:
            take = x[: max(0, n_iwae - batch_idx * len(x))]
            nll = self.iwae_nll(take, k)
            # the bound on the first val_iwae_images images, and its gain over the ELBO on those same images
            gap = out["neg_elbo"][: len(take)] - nll
            self.log_dict({f"val/iwae_nll_k{k}": nll.mean(), f"val/iwae_gain_k{k}": gap.mean()},
                          on_epoch=True, sync_dist=True, batch_size=len(take))
        if self._figures_due():
            self._val_store.setdefault("mu", []).append(out["mu"].detach())
            self._val_store.setdefault("y", []).append(y)
            if seen < 512:
                self._val_store.setdefault("x", []).append(x[: 512 - seen])
                self._val_store.setdefault("y_x", []).append(y[: 512 - seen])

    def test_step(self, batch, batch_idx):
        x, _ = batch
        self._eval_step(batch, "test")
        k = self.hparams.test_iwae_k
        if k > 0:
            self.log(f"test/iwae_nll_k{k}", self.iwae_nll(x, k).mean(), on_epoch=True, sync_dist=True,
                     batch_size=len(x))

    def on_validation_epoch_start(self) -> None:
        self._val_store = {}

    def _figures_due(self) -> bool:
        every = self.hparams.figures_every_n_epochs
        if every <= 0 or attached_trainer(self) is None or self.trainer.sanity_checking:
            return False
        return (self.current_epoch + 1) % every == 0 or self.current_epoch + 1 == self.trainer.max_epochs

    def on_validation_epoch_end(self) -> None:
        if not self._val_store or not self._figures_due() or not self.trainer.is_global_zero:
            self._val_store = {}
            return
        from genlab.figures.vae import make_figures
        from genlab.reporting import log_image, never_fatal

        store = {k: torch.cat(v) for k, v in self._val_store.items()}
        self._val_store = {}
        with never_fatal(self, "VAE figures"):  # figures only report: a failure must not cost the run
            figs = make_figures(self, store["x"], store["y_x"], store["mu"], store["y"], split="validation")
            for key, (image, caption) in figs.items():
                log_image(self.trainer, key, image, caption=f"epoch {self.current_epoch}: {caption}")
        import matplotlib.pyplot as plt

        plt.close("all")

    def on_train_end(self) -> None:
        """At the end of training, on rank 0: the latent explorer (figures/latent_explorer.html, W&B key
        `latent_explorer`) and the scatter as a table with thumbnails (figures/latent_scatter_table.csv, W&B key
        `latent_scatter_table`), both from validation images. Skipped when figures are off."""
        if self.hparams.figures_every_n_epochs <= 0 or not self.trainer.is_global_zero:
            return
        x, y = self._validation_images(EXPLORER_IMAGES)
        if x is None:
            return
        from genlab.figures.vae import class_names_of, encode_means, explorer_page, latent_plane
        from genlab.reporting import log_html, log_image_table

        with eval_mode(self):
            mu = encode_means(self, x)
            log_html(self.trainer, "latent_explorer", explorer_page(self, mu, y, split="validation"))
        names = class_names_of(self)
        pts = latent_plane(mu).project(mu)[:TABLE_ROWS]
        rows = [[round(a, 4), round(b, 4), int(c), names[int(c)]] for (a, b), c in zip(pts.tolist(), y[:TABLE_ROWS].tolist(), strict=True)]
        log_image_table(self.trainer, "latent_scatter_table", ["z0", "z1", "label", "class"], rows, x[: len(rows)])

    def _validation_images(self, limit: int) -> tuple[Tensor | None, Tensor | None]:
        """Up to `limit` images and labels from the trainer's (first) validation loader, on the CPU."""
        loaders = self.trainer.val_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        if loaders is None or isinstance(loaders, dict):
            return None, None
        xs, ys, n = [], [], 0
        for x, y in loaders:
            xs.append(x.cpu())
            ys.append(y.cpu())
            n += len(x)
            if n >= limit:
                break
        if not xs:
            return None, None
        return torch.cat(xs)[:limit], torch.cat(ys)[:limit]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        schedule = self.hparams.schedule
        if schedule == "constant":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = make_scheduler(opt, schedule, self.hparams.lr, total, self.hparams.warmup_frac)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
