"""DCGAN: the step's structure (D first; G taught only by D), the knobs, the diagnostics, the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genlab.models.dcgan import DCGAN, NonFiniteLossError, discriminator_loss, generator_loss
from genlab.nets.dcgan import Discriminator

TINY = dict(z_dim=16, g_width=8, d_width=0.125, n_fixed=4, d_strong_patience=10_000)
REPO = Path(__file__).resolve().parents[1]


def loader(x: torch.Tensor, batch_size: int = 8) -> DataLoader:
    """Batches (x in [0,1], y) in a fixed order."""
    return DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=batch_size)


def real_images(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def fit(model: DCGAN, x: torch.Tensor, steps: int = 1, seed: int = 0, **trainer_kw) -> pl.Trainer:
    """Train for `steps` batches. Lightning's global_step (and max_steps) counts optimizer steps: d_steps + g_steps
    of them per batch in manual optimization."""
    pl.seed_everything(seed, verbose=False)
    per_batch = model.hparams.d_steps + model.hparams.g_steps
    kw = dict(max_steps=steps * per_batch, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu", devices=1, num_sanity_val_steps=0)
    kw.update(trainer_kw)
    trainer = pl.Trainer(**kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|LeafSpec|max_steps).*")
        trainer.fit(model, loader(x))
    return trainer


def fresh(**kw) -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(**{**TINY, **kw})


# ------------------------------------------------------------------------------------------- the step's structure
@pytest.mark.parametrize("minibatch_std", [False, True])
def test_generator_gradient_does_not_depend_on_real_batch(minibatch_std):
    """With D frozen (d_lr=0) and the same z, G's gradient is identical for two unrelated real batches,
    while D's gradient (sanity check) does change with the real batch. Also with D's minibatch-std feature,
    which looks across the batch: in G's step that batch holds fakes only."""
    grads = []
    for real_seed in (1, 2):
        model = fresh(d_lr=0.0, d_minibatch_std=minibatch_std)
        fit(model, real_images(8, seed=real_seed), steps=1, seed=0)
        g = [p.grad.clone() for p in model.generator.parameters()]
        d = [p.grad.clone() for p in model.discriminator.parameters() if p.grad is not None]
        grads.append((g, d))
    (g1, d1), (g2, d2) = grads
    assert all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))
    assert any(a.abs().sum() > 0 for a in g1)
    assert not all(torch.equal(a, b) for a, b in zip(d1, d2, strict=True))


def test_generator_step_receives_no_real_batch():
    import inspect

    params = list(inspect.signature(DCGAN.generator_step).parameters)
    assert params == ["self", "z", "g_opt", "fake"]


def test_discriminator_updated_before_generator_loss():
    """Within one training step, D's parameters have already moved when G's loss is computed."""
    model = fresh()
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    seen, order = {}, []
    d_step, g_step = model.discriminator_step, model.generator_step

    def record_d(*args, **kwargs):
        order.append("D")
        return d_step(*args, **kwargs)

    def record_g(*args, **kwargs):
        order.append("G")
        seen["d_params"] = [p.detach().clone() for p in model.discriminator.parameters()]
        return g_step(*args, **kwargs)

    model.discriminator_step, model.generator_step = record_d, record_g
    fit(model, real_images(8), steps=1)
    after = [p.detach().clone() for p in model.discriminator.parameters()]
    assert order == ["D", "G"]
    assert not all(torch.equal(a, b) for a, b in zip(before, seen["d_params"], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(seen["d_params"], after, strict=True))  # G's step leaves D alone


def test_d_steps_and_g_steps_repeat_updates():
    model = fresh(d_steps=2, g_steps=3)
    order = []
    d_step, g_step = model.discriminator_step, model.generator_step
    model.discriminator_step = lambda *a, **k: order.append("D") or d_step(*a, **k)
    model.generator_step = lambda *a, **k: order.append("G") or g_step(*a, **k)
    fit(model, real_images(8), steps=1)
    assert order == ["D", "D", "G", "G", "G"]


# ------------------------------------------------------------------------------------------- knobs
def test_label_smoothing_and_flips_change_d_targets():
    real_t, fake_t = fresh().d_targets(1000)
    assert torch.all(real_t == 1.0) and torch.all(fake_t == 0.0)
    real_t, fake_t = fresh(real_label=0.9).d_targets(1000)
    assert torch.allclose(real_t, torch.full_like(real_t, 0.9)) and torch.all(fake_t == 0.0)  # one-sided
    torch.manual_seed(0)
    real_t, fake_t = fresh(label_flip_prob=0.2).d_targets(1000)
    assert 0.1 < (real_t == 0).float().mean() < 0.3 and 0.1 < (fake_t == 1).float().mean() < 0.3


def test_instance_noise_anneals_linearly_to_zero():
    model = fresh(instance_noise_std=0.2, instance_noise_anneal_steps=100)
    levels = []
    for step in (0, 50, 100, 500):
        model.gan_step.fill_(step)
        levels.append(model.instance_noise_level())
    assert levels == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert fresh().instance_noise_level() == 0.0
    model.gan_step.fill_(0)
    x = torch.zeros(4, 1, 28, 28)
    assert model.d_input(x).std() > 0.1 and torch.equal(fresh().d_input(x), x)


def test_instance_noise_level_follows_training_steps():
    model = fresh(instance_noise_std=0.1, instance_noise_anneal_steps=4)
    fit(model, real_images(16), steps=2)
    assert int(model.gan_step) == 2 and model.instance_noise_level() == pytest.approx(0.05)


def test_discriminator_knobs_change_the_network():
    def n_params(m):
        return sum(p.numel() for p in m.parameters())

    assert n_params(fresh(d_width=0.25).discriminator) > n_params(fresh(d_width=0.125).discriminator)
    assert n_params(Discriminator(64)) == 138_689  # DCGAN's D at 28x28: 64 -> 128 channels
    sn = fresh(d_spectral_norm=True).discriminator
    assert any(hasattr(m, "parametrizations") for m in sn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in sn.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in fresh(d_dropout=0.3).discriminator.modules())


def test_generator_extra_layers_add_3x3_convs_at_7x7(tmp_path):
    """g_extra_layers puts conv 3x3 + batch norm + ReLU blocks between the 7x7 stage and the upsampling; the
    default (0) is the plain DCGAN generator; the setting survives a checkpoint."""
    from genlab.checkpoints import load_module

    plain, deeper = fresh(), fresh(g_extra_layers=2)
    convs = [m for m in deeper.generator.modules() if isinstance(m, torch.nn.Conv2d)
             and not isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 2 and all(c.kernel_size == (3, 3) and c.in_channels == c.out_channels == 16 for c in convs)
    assert not any(type(m) is torch.nn.Conv2d for m in plain.generator.modules())
    feature = deeper.generator.net[:4](torch.randn(3, 16, 1, 1))  # through the first extra conv
    assert feature.shape == (3, 16, 7, 7)
    assert deeper.sample(5, seed=0).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="g_extra_layers"):
        fresh(g_extra_layers=-1)
    trainer = fit(deeper, real_images(16), steps=2, default_root_dir=tmp_path)
    trainer.save_checkpoint(tmp_path / "deeper.ckpt")
    loaded = load_module(tmp_path / "deeper.ckpt", expected=DCGAN)
    assert loaded.hparams.g_extra_layers == 2
    assert torch.equal(loaded.sample(4, seed=1), deeper.sample(4, seed=1))


def test_minibatch_std_feature_sees_batch_diversity():
    from genlab.nets.dcgan import MinibatchStd

    same = torch.randn(1, 3, 7, 7).expand(4, 3, 7, 7)
    out = MinibatchStd()(same)
    assert out.shape == (4, 4, 7, 7) and torch.allclose(out[:, 3], torch.zeros(4, 7, 7), atol=1e-6)
    x = torch.randn(4, 3, 7, 7)
    varied = MinibatchStd()(x)
    assert varied[:, 3].min() > 0.1 and torch.equal(varied[:, :3], x)
    d = fresh(d_minibatch_std=True).discriminator
    assert d(torch.rand(4, 1, 28, 28)).shape == (4,)


def test_all_knobs_train_and_log_the_diagnostics():
    model = fresh(real_label=0.9, label_flip_prob=0.05, instance_noise_std=0.1, instance_noise_anneal_steps=10,
                  d_dropout=0.2, d_spectral_norm=True, r1_gamma=1.0, g_ema_decay=0.9, d_lr=1e-4, g_lr=3e-4,
                  d_minibatch_std=True)
    trainer = fit(model, real_images(16), steps=2)
    logged = set(trainer.logged_metrics)
    for key in ("d_loss", "g_loss", "d_real", "d_fake_before", "d_fake_after", "g_grad_norm", "d_grad_norm",
                "instance_noise", "r1"):
        assert f"train/{key}" in logged, key
    assert all(torch.isfinite(v) for v in trainer.logged_metrics.values())
    opt_d, opt_g = (o.param_groups[0]["lr"] for o in trainer.optimizers)
    assert (opt_d, opt_g) == (1e-4, 3e-4)


# ------------------------------------------------------------------------------------------- the generator's loss
def test_saturating_loss_gradient_matches_its_formula():
    """log(1 - sigmoid(l)) minimised by G: d/dl = -sigmoid(l); the non-saturating -log sigmoid(l): sigmoid(l) - 1."""
    logits = torch.linspace(-30, 10, 41, dtype=torch.float64)
    for kind, expected in (("saturating", -torch.sigmoid(logits)), ("non_saturating", torch.sigmoid(logits) - 1)):
        lg = logits.clone().requires_grad_(True)
        loss = generator_loss(lg, kind)
        (grad,) = torch.autograd.grad(loss * len(logits), lg)  # the loss is a mean over the batch
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(generator_loss(logits, "saturating"), torch.log1p(-torch.sigmoid(logits)).mean())
    torch.testing.assert_close(generator_loss(logits, "non_saturating"), -torch.log(torch.sigmoid(logits)).mean())


def test_saturating_gradient_vanishes_under_a_confident_discriminator():
    """D(G(z)) ~ 0 (logit -12): the saturating loss gives G a gradient ~1e5 times smaller than the non-saturating
    one, both at D's logit and at G's weights through the real networks."""
    lg = torch.full((8,), -12.0, requires_grad=True)
    g_sat = torch.autograd.grad(generator_loss(lg, "saturating"), lg)[0].abs().mean()
    g_ns = torch.autograd.grad(generator_loss(lg, "non_saturating"), lg)[0].abs().mean()
    assert g_sat < 1e-4 * g_ns
    norms = {}
    for kind in ("saturating", "non_saturating"):
        model = fresh(g_loss=kind)
        with torch.no_grad():
            model.discriminator.net[-1].bias.fill_(-12.0)  # D says "fake" to everything: D(G(z)) ~ 6e-6
        z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
        loss = generator_loss(model.discriminator(model.generator(z)), kind)
        norms[kind] = torch.linalg.vector_norm(torch.cat([g.flatten() for g in torch.autograd.grad(
            loss, list(model.generator.parameters()))]))
    assert 0 < norms["saturating"] < 1e-3 * norms["non_saturating"]


def test_g_loss_is_a_logged_hyper_parameter_and_trains():
    model = fresh(g_loss="saturating")
    assert model.hparams.g_loss == "saturating" and fresh().hparams.g_loss == "non_saturating"
    trainer = fit(model, real_images(16), steps=2)
    assert torch.isfinite(trainer.logged_metrics["train/g_loss"]) and trainer.logged_metrics["train/g_loss"] < 0
    with pytest.raises(ValueError, match="g_loss must be one of non_saturating, saturating, hinge, got 'minimax'"):
        fresh(g_loss="minimax")


def test_hinge_losses_on_known_logits():
    """D: mean max(0, 1 - l) on real and mean max(0, 1 + l) on fake logits; G: -mean l. The BCE losses are unchanged."""
    logits = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert discriminator_loss(logits, ones, "hinge").item() == pytest.approx((3 + 1 + 0.5 + 0) / 4)
    assert discriminator_loss(logits, zeros, "hinge").item() == pytest.approx((0 + 1 + 1.5 + 4) / 4)
    assert generator_loss(logits, "hinge").item() == pytest.approx(-0.375)
    # a smoothed real target 0.9 is the sign 0.8: max(0, 1 - 0.8 l); a flipped target swaps the terms
    assert discriminator_loss(logits, torch.full((4,), 0.9), "hinge").item() == pytest.approx((2.6 + 1 + 0.6 + 0) / 4)
    for kind in ("non_saturating", "saturating"):
        torch.testing.assert_close(discriminator_loss(logits, ones, kind),
                                   torch.nn.functional.binary_cross_entropy_with_logits(logits, ones))
    lg = torch.full((8,), -12.0, requires_grad=True)  # a confident D still leaves G a gradient of -1/n per logit
    assert torch.autograd.grad(generator_loss(lg, "hinge"), lg)[0].tolist() == [-1 / 8] * 8


def test_hinge_option_trains_d_and_g_with_the_hinge_loss(monkeypatch):
    import genlab.models.dcgan as dcgan

    kinds = {"D": set(), "G": set()}
    d_loss, g_loss = dcgan.discriminator_loss, dcgan.generator_loss
    monkeypatch.setattr(dcgan, "discriminator_loss", lambda z, t, k: kinds["D"].add(k) or d_loss(z, t, k))
    monkeypatch.setattr(dcgan, "generator_loss", lambda z, k: kinds["G"].add(k) or g_loss(z, k))
    trainer = fit(fresh(g_loss="hinge"), real_images(16), steps=2)
    assert kinds == {"D": {"hinge"}, "G": {"hinge"}}
    assert all(torch.isfinite(trainer.logged_metrics[f"train/{k}"]) for k in ("d_loss", "g_loss"))


# ------------------------------------------------------------------------------------------- DiffAugment
def test_translation_and_cutout_move_and_hide_pixels():
    from genlab.nets.diffaugment import cutout, translation

    torch.manual_seed(0)
    dot = torch.zeros(64, 1, 28, 28)
    dot[:, :, 14, 14] = 1.0
    moved = translation(dot)
    assert torch.equal(moved.sum((1, 2, 3)), torch.ones(64))  # the dot stays whole, somewhere else
    where = moved[:, 0].flatten(1).argmax(1)
    dy, dx = where // 28 - 14, where % 28 - 14
    assert dy.abs().max() <= 4 and dx.abs().max() <= 4 and len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 10
    ones = torch.ones(64, 1, 28, 28)
    cut = cutout(ones)
    holes = (cut == 0).sum((1, 2, 3))
    assert holes.max() == 14 * 14 and holes.min() >= 7 * 7  # half the size, clipped at the edges
    assert ((cut == 0) | (cut == 1)).all()


def test_gradients_flow_through_the_augmentation():
    """d sum(aug(x)) / dx is 1 at every pixel that reaches the output and 0 elsewhere; through D and the
    augmentation, G's parameters get a gradient."""
    from genlab.nets.diffaugment import diff_augment

    torch.manual_seed(1)
    x = torch.ones(16, 1, 28, 28, requires_grad=True)
    y = diff_augment(x, "translation,cutout")
    y.sum().backward()
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}
    assert x.grad.sum() == y.sum() and 0 < y.sum() < x.numel()
    x_nhwc = torch.rand(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    assert diff_augment(x_nhwc, "translation,cutout").is_contiguous(memory_format=torch.channels_last)

    model = fresh(diffaugment="translation,cutout", d_lr=0.0)
    fit(model, real_images(8), steps=1)
    grads = [p.grad for p in model.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def d_inputs_of_one_step(model: DCGAN, x: torch.Tensor) -> list[torch.Tensor]:
    """What D is shown in one training step (in order: real and fake of D's update, fake of G's update)."""
    seen = []
    hook = model.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    fit(model, x, steps=1)
    hook.remove()
    return seen


def test_the_augmentation_is_applied_to_real_and_fake_alike(monkeypatch):
    import genlab.models.dcgan as dcgan

    augmented, augment = [], dcgan.diff_augment

    def spy(x, policy):
        out = augment(x, policy)
        augmented.append((x, out))
        return out

    monkeypatch.setattr(dcgan, "diff_augment", spy)
    x = real_images(8)
    seen = d_inputs_of_one_step(fresh(diffaugment="translation,cutout"), x)
    assert len(seen) == len(augmented) == 3
    assert all(shown is out for shown, (_, out) in zip(seen, augmented, strict=True))  # D sees augmented images only
    (real_in, real_out), (fake_in, fake_out), (g_fake_in, _) = augmented
    assert torch.equal(real_in, x * 2 - 1) and not torch.equal(real_out, real_in)  # the real batch, augmented
    assert not fake_in.requires_grad and g_fake_in.grad_fn is not None  # G(z) in D's step (detached) and in G's
    assert not torch.equal(fake_out, fake_in)


def test_without_the_options_d_sees_the_images_as_before():
    """diffaugment "" (the default): D's inputs are exactly the real batch in [-1, 1] and G's samples, unchanged."""
    model = fresh()
    x = real_images(8)
    seen = d_inputs_of_one_step(model, x)
    assert len(seen) == 3 and torch.equal(seen[0], x * 2 - 1)
    assert torch.equal(seen[1], seen[2].detach())  # the same G(z) in D's and in G's update, not augmented
    assert seen[2].grad_fn is not None and seen[2].grad_fn.name().startswith("Tanh")  # straight from G's output
    for off in ("", "none"):
        assert fresh(diffaugment=off)._augment == ()
    with pytest.raises(ValueError, match="unknown augmentation 'color'; use a comma-separated list of translation, cutout"):
        fresh(diffaugment="translation,color")


# ------------------------------------------------------------------------------------------- diagnostics
def test_too_strong_discriminator_warns_with_advice():
    model = fresh(d_lr=0.0, d_strong_patience=3)
    with torch.no_grad():
        model.discriminator.net[-1].bias.fill_(-20.0)  # D says "fake" to everything: D(G(z)) ~ 2e-9
    with pytest.warns(UserWarning, match="discriminator too strong, generator gradients vanishing: try real_label 0.9"):
        fit(model, real_images(32), steps=4)


def test_non_finite_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    class Poison(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                with torch.no_grad():
                    pl_module.generator.net[-2].weight.fill_(float("nan"))

    model = fresh()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    with pytest.raises(NonFiniteLossError, match="non-finite discriminator loss"):
        fit(model, real_images(16), steps=5, max_epochs=3, callbacks=[Poison(), ckpt],
            enable_checkpointing=True, default_root_dir=tmp_path)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------------------- outputs
def test_sample_range_seed_and_checkpoint_round_trip(tmp_path):
    from genlab.checkpoints import load_module

    model = fresh(g_ema_decay=0.5)
    trainer = fit(model, real_images(16), steps=2, enable_checkpointing=True, default_root_dir=tmp_path)
    x = model.sample(10, seed=3)
    assert x.shape == (10, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, model.sample(10, seed=3)) and not torch.equal(x, model.sample(10, seed=4))
    assert model.generator.training  # sampling restores training mode
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_module(path, expected=DCGAN)
    assert torch.equal(loaded.sample(10, seed=3), x)
    assert (tmp_path / "figures" / "samples_fixed_noise.png").is_file()


def test_channels_last_is_a_layout_not_a_different_model(tmp_path):
    """channels_last keeps the weights and the arithmetic (same init, same samples up to float rounding), stores
    G and D in NHWC, trains, and survives a checkpoint round trip."""
    from genlab.checkpoints import load_module

    plain, nhwc = fresh(), fresh(channels_last=True)
    conv = nhwc.discriminator.net[3].weight  # 14 -> 7 (the first conv has one input channel: both layouts agree)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), nhwc.state_dict().values(), strict=True))
    torch.testing.assert_close(nhwc.sample(6, seed=1), plain.sample(6, seed=1), rtol=1e-5, atol=1e-5)
    trainer = fit(nhwc, real_images(16), steps=2, default_root_dir=tmp_path)
    assert nhwc.generator.net[3].weight.is_contiguous(memory_format=torch.channels_last)  # still NHWC after Adam
    trainer.save_checkpoint(tmp_path / "nhwc.ckpt")
    loaded = load_module(tmp_path / "nhwc.ckpt", expected=DCGAN)
    assert loaded.hparams.channels_last
    torch.testing.assert_close(loaded.sample(6, seed=2), nhwc.sample(6, seed=2), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("data_root")
def test_fit_from_config_through_the_cli(tmp_path):
    from genlab.cli import main

    main(["fit", "-c", str(REPO / "configs" / "dcgan_mnist.yaml"),
          "--trainer.max_steps", "2", "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(tmp_path / "run"),
          "--data.init_args.train_limit", "64", "--data.init_args.batch_size", "16",
          "--model.init_args.g_width", "8", "--model.init_args.d_width", "0.125",
          # the per-epoch judge (SampleQualityCallback) costs ~30 s to set up here; tests/test_metrics.py covers it
          "--trainer.callbacks", "[]", "--checkpoint.monitor", "null"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "figures" / "samples_fixed_noise.png").is_file()
