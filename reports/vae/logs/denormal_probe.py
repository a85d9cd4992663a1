import os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, "/work/main/scripts")
import torch
if os.environ.get("FTZ"): print("ftz", torch.set_flush_denormal(True))
from bench_vae import DEFAULT_CONFIG, timing_callbacks
from genlab.lightning_cli import GenlabCLI
from genlab.loggers import finish_wandb_run
def run(extra):
    cli = GenlabCLI(args=["-c", str(DEFAULT_CONFIG), "--trainer.max_epochs", "3", "--trainer.default_root_dir", "/tmp/gl/prof_run2",
        "--trainer.enable_progress_bar", "false", *extra], run=False)
    timer, _ = timing_callbacks(None, 0)
    class EpochT(__import__("pytorch_lightning").Callback):
        def on_train_epoch_end(self, trainer, m):
            print("   epoch", trainer.current_epoch, "cum ms/step", round(timer.seconds / timer.images * 128 * 1e3, 2), flush=True)
    cli.trainer.callbacks += [timer, EpochT()]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finish_wandb_run()
    return timer.seconds / timer.images * 128 * 1e3
for name, extra in [("noval_nofig", ["--trainer.limit_val_batches", "0", "--model.init_args.figures_every_n_epochs", "0"]),
                    ("val_nofig", ["--model.init_args.figures_every_n_epochs", "0"]),
                    ("val_fig", [])]:
    if len(sys.argv) > 1 and name not in sys.argv[1:]: continue
    print(name, round(run(extra), 2), "ms/step", flush=True)
