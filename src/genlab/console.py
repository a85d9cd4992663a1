"""What genlab says on the console around a Lightning run: the known third-party noise filtered out and genlab's own
warnings as one line (the end-of-run report is RunSummary's, genlab.callbacks.summary)."""

from __future__ import annotations

import logging
import warnings

# Third-party lines that say nothing to a genlab user (genlab's own warnings are never filtered)
NOISE_WARNINGS = (
    r".*LeafSpec.*",  # a deprecation inside Lightning's own pytree helper
    r".*val_dataloader.* but have no .validation_step.*",  # the DCGAN scores samples instead of a val loop
    r"Precision .* is not supported by the model summary.*",
    r".*does not have many workers.*",  # in-memory data sets: workers would only add start-up time
    r"There is a wandb run already in progress.*",  # genlab opens the run itself (genlab.loggers)
    r"The `srun` command is available on your system but is not used.*",
    r"LightningCLI's args parameter.*",  # `genlab` hands LightningCLI the arguments it read from sys.argv
)
NOISE_LOG_LINES = ("💡 Tip:", "litlogger")
_python_formatwarning = warnings.formatwarning


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(marker in record.getMessage() for marker in NOISE_LOG_LINES)


def quiet_third_party() -> None:
    """Filter the known third-party noise (as pytest's config does) and say genlab's own warnings in one line."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logger = logging.getLogger(name)
        for filterer in (logger, *logger.handlers):
            if _not_noise not in filterer.filters:
                filterer.addFilter(_not_noise)
    warnings.formatwarning = short_warning


def short_warning(message, category, filename, lineno, line=None) -> str:
    """genlab's own warnings as one readable line; others in Python's usual format."""
    if "genlab" in str(filename) and issubclass(category, UserWarning):
        return f"genlab warning: {message}\n"
    return _python_formatwarning(message, category, filename, lineno, line)
