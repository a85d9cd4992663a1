"""Export a trained Classifier checkpoint as genlab's shipped FID-judge weights (plain state_dict + SHA-256).

    genlab fit -c configs/classifier_mnist.yaml
    python scripts/export_classifier.py --ckpt runs/classifier_mnist/checkpoints/best.ckpt --dataset mnist

Writes src/genlab/metrics/weights/<dataset>_classifier.pt and .pt.sha256 and prints one JSON line with the
checkpoint's accuracy on the full official test set.
"""

import sys

from genlab.tools.export_classifier import main

if __name__ == "__main__":
    sys.exit(main())
