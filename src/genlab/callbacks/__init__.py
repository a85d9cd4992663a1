"""Callbacks and the helpers they share for pictures and tables."""

from genlab.callbacks.images import figure_dir, log_html, log_image, log_image_table, log_table, save_figure

__all__ = ["figure_dir", "log_html", "log_image", "log_image_table", "log_table", "save_figure"]
from genlab.callbacks.sample_quality import SampleQualityCallback as SampleQualityCallback
