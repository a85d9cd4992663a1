"""Peak memory of holding a text corpus for the language model: a random single-line corpus of --mb megabytes
(ASCII letters and punctuation), loaded by CharTextDataModule.setup().

    python scripts/corpus_memory.py --mb 20
Prints the process's peak resident memory after the imports and after setup (ru_maxrss), and their difference.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
from pathlib import Path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=20)
    args = parser.parse_args()
    from genlab.data.text import CharTextDataModule

    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'-"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        with open(path, "w", encoding="ascii") as f:  # a chunk at a time, so that writing adds no peak of its own
            for _ in range(int(args.mb)):
                f.write("".join(rng.choices(alphabet, k=1_000_000)))
        before = peak_mb()
        data = CharTextDataModule(path=str(path), block_size=256, batch_size=16)
        data.setup()
        after = peak_mb()
    print(f"{args.mb:g} MB corpus, ids {data._train.ids.dtype}: peak RSS {before:.0f} MB after imports and writing "
          f"the file, {after:.0f} MB after setup: +{after - before:.0f} MB for the corpus")


if __name__ == "__main__":
    main()
