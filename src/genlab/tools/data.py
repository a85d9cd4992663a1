"""`genlab data <corpus>`: prepare a data set once, into genlab's data folder.

    genlab data bible-eng-spa [--out DIR] [--modules SWORD_DIR]

bible-eng-spa writes English -> Spanish verse pairs, split by book, to $GENLAB_DATA_DIR/bible_eng_spa/
(train.tsv, val.tsv, test.tsv, stats.json, README.md); genlab.data.bible says how they are made. The output
depends only on the installed Bible modules, so a second run rewrites the same bytes: it overwrites without asking.
"""

from __future__ import annotations

import argparse
import time

from genlab.tools.checks import output_folder, says_input_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab data", description="Prepare a data set once, into genlab's data folder.")
    sub = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    bible = sub.add_parser(
        "bible-eng-spa",
        help="English -> Spanish verse pairs (World English Bible / Reina-Valera 1909), split by book",
        description="English -> Spanish verse pairs from the public-domain World English Bible and Reina-Valera "
                    "1909 SWORD modules (Debian: apt-get install sword-text-web sword-text-sparv), aligned by "
                    "verse reference and split by book: DIR/{train,val,test}.tsv (english<TAB>spanish<TAB>"
                    "reference), stats.json, README.md. Deterministic: running it again rewrites the same files.",
        epilog="then: genlab fit -c configs/<translator>.yaml --data.init_args.path $GENLAB_DATA_DIR/bible_eng_spa",
    )
    bible.add_argument("--out", default=None, metavar="DIR",
                       help="output folder (default: $GENLAB_DATA_DIR/bible_eng_spa, else ./data/bible_eng_spa)")
    bible.add_argument("--modules", default=None, metavar="SWORD_DIR",
                       help="a SWORD folder holding mods.d/ and modules/ (default: $SWORD_PATH, ~/.sword, "
                            "/usr/share/sword)")
    return p


@says_input_errors("data")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from genlab.data import bible

    out = output_folder(args.out if args.out is not None else bible.default_out_dir())
    start = time.perf_counter()
    stats = bible.prepare(out, args.modules)
    pairs, dropped = stats["pairs"], stats["dropped"]
    print(f"genlab data bible-eng-spa: {sum(pairs.values())} pairs in {out} "
          f"(train {pairs['train']}, val {pairs['val']}, test {pairs['test']}); "
          f"{stats['dropped_total']} dropped ({', '.join(f'{r}: {n}' for r, n in dropped.items())}); "
          f"{time.perf_counter() - start:.1f} s")
    return 0
