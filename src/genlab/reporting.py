"""Pictures, tables and pages of a run: saved in the run folder and sent to whichever logger the run uses.

Models and callbacks report through these helpers, and tools save their figures with `save_figure`. Reporting is
worth less than the training it describes: a block wrapped in `never_fatal` that fails says so once (one
`genlab warning:` line per kind of report) and the run goes on.
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


@contextmanager
def never_fatal(owner, what: str):
    """Run a block that only reports; an exception in it becomes one warning per `owner` and `what`."""
    try:
        yield
    except Exception as err:  # noqa: BLE001  (any failure of a report, by design; KeyboardInterrupt passes)
        said = owner.__dict__.setdefault("_genlab_report_failures", set())
        if what not in said:
            said.add(what)
            detail = " ".join(str(err).split()) or type(err).__name__
            warnings.warn(f"{what} failed, training goes on without them ({type(err).__name__}: {detail}); "
                          f"said once per run", UserWarning, stacklevel=3)


def figure_dir(trainer: pl.Trainer) -> Path:
    """<trainer.default_root_dir>/figures, created on first use."""
    folder = Path(trainer.default_root_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(image, path: str | Path) -> Path:
    """Write a matplotlib Figure (then closed) or a float tensor [C,H,W] in [0,1] as a PNG."""
    import matplotlib.pyplot as plt
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, torch.Tensor):
        save_image(image.detach().float().cpu(), path)
    elif hasattr(image, "savefig"):
        image.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(image)
    else:
        raise TypeError(f"expected a matplotlib Figure or an image tensor, got {type(image).__name__}")
    return path


def log_image(trainer: pl.Trainer, key: str, image, caption: str | None = None) -> Path | None:
    """Save `image` as <figures>/<key>.png (latest) and <figures>/<key>/epoch_XXXX.png, and log it.

    Only rank 0 writes and logs, so a multi-process run logs each picture once.
    """
    if trainer.global_rank != 0:
        if hasattr(image, "savefig"):
            import matplotlib.pyplot as plt

            plt.close(image)
        return None
    folder = figure_dir(trainer)
    epoch_file = save_figure(image, folder / key / f"epoch_{trainer.current_epoch:04d}.png")
    latest = folder / f"{key}.png"
    shutil.copyfile(epoch_file, latest)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            extra = {"caption": [caption]} if caption else {}
            logger.log_image(key=key, images=[str(epoch_file)], step=trainer.global_step, **extra)
        elif isinstance(logger, TensorBoardLogger):
            from torchvision.io import ImageReadMode, decode_image

            pixels = decode_image(str(epoch_file), mode=ImageReadMode.RGB)
            logger.experiment.add_image(key, pixels, global_step=trainer.global_step)
    return latest


def log_table(trainer: pl.Trainer, key: str, columns: list[str], rows: list[list]) -> Path | None:
    """A table to W&B (or TensorBoard text), also written as <figures>/<key>.md on rank 0."""
    if trainer.global_rank != 0:
        return None
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(cell).replace("|", "\\|").replace("\n", "<br>") for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n"
    path = figure_dir(trainer) / f"{key}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"step {trainer.global_step}\n\n" + markdown, encoding="utf-8")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_text(key=key, columns=list(columns), data=[list(r) for r in rows], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, markdown, global_step=trainer.global_step)
    return path


def log_html(trainer: pl.Trainer, key: str, html: str) -> Path | None:
    """A self-contained HTML page as <figures>/<key>.html and, on W&B, as `wandb.Html` under `key` (rank 0)."""
    if trainer.global_rank != 0:
        return None
    path = figure_dir(trainer) / f"{key}.html"
    path.write_text(html, encoding="utf-8")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            # inject=False: W&B's own stylesheet would be one more thing the page loads
            logger.log_metrics({key: wandb.Html(html, inject=False, data_is_not_path=True)}, step=trainer.global_step)
    return path


def log_image_table(trainer: pl.Trainer, key: str, columns: list[str], rows: list[list], images: torch.Tensor,
                    image_column: str = "thumbnail") -> Path | None:
    """A table whose rows end with a small image each: on W&B a `wandb.Table` with `wandb.Image` cells, in the
    run folder <figures>/<key>.csv without the images (rank 0). images: [len(rows), 1 or 3, H, W] in [0, 1]."""
    if trainer.global_rank != 0:
        return None
    import csv

    path = figure_dir(trainer) / f"{key}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
    if wandb_loggers:
        import wandb

        pixels = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).squeeze(-1).numpy()  # HxW (gray) or HxWx3, as wandb.Image reads them
        data = [list(row) + [wandb.Image(im)] for row, im in zip(rows, pixels, strict=True)]
        for logger in wandb_loggers:
            logger.log_table(key=key, columns=[*columns, image_column], data=data, step=trainer.global_step)
    return path
