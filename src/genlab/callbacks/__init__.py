"""Lightning Callbacks genlab adds to a run (the helpers they report through live in genlab.reporting)."""

from genlab.callbacks.sample_quality import SampleQualityCallback as SampleQualityCallback
