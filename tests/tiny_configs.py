"""Every model's real config, shrunk by command-line overrides only, for multi-process and precision tests.

name -> (config file, the validation metric to compare or None, overrides)
"""

SMALL_MNIST = ["--data.init_args.train_limit", "512", "--data.init_args.val_size", "1000",
               "--data.init_args.eval_batch_size", "250"]
MODELS = {
    "vae": ("configs/vae_mnist.yaml", "val/loss", [
        *SMALL_MNIST, "--model.init_args.hidden", "[64, 32]", "--model.init_args.val_iwae_images", "0",
        "--trainer.max_epochs", "1"]),
    "classifier": ("configs/classifier_mnist.yaml", "val/loss", [
        *SMALL_MNIST, "--model.init_args.width", "8", "--trainer.max_epochs", "1"]),
    "dcgan": ("configs/dcgan_mnist.yaml", None, [
        "--data.init_args.train_limit", "512", "--model.init_args.g_width", "8", "--model.init_args.d_width", "0.25",
        "--trainer.max_epochs", "1"]),
    "lm": ("configs/lm_shakespeare.yaml", "val/loss", [
        "--trainer.max_time", "null", "--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.val_check_interval", "1.0",
        "--trainer.precision", "32-true", "--data.init_args.train_samples_per_epoch", "256",
        "--data.init_args.batch_size", "32", "--data.init_args.block_size", "32", "--model.init_args.block_size", "32",
        "--model.init_args.n_layer", "1", "--model.init_args.n_head", "2", "--model.init_args.n_embd", "32"]),
}
