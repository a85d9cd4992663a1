"""The English -> Spanish Bible corpus (genlab.data.bible, `genlab data bible-eng-spa`).

The markup stripper and the versification table are tested on raw module text cut from the real modules
(tests/fixtures/bible/verses.json), so they are tested everywhere; the tests that read the installed modules
skip, with the packages to install, where the modules are absent."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from genlab.data import bible
from genlab.data.paths import DataNotFoundError

FIXTURE = Path(__file__).parent / "fixtures" / "bible" / "verses.json"


def ref(text: str) -> bible.Ref:
    book, cv = text.split(" ")
    chapter, verse = cv.split(":")
    return book, int(chapter), int(verse)


@pytest.fixture(scope="module")
def raw_fixture() -> dict[str, dict[bible.Ref, str]]:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return {key: {ref(r): t for r, t in data[key].items()} for key in (bible.ENGLISH_MODULE, bible.SPANISH_MODULE)}


@pytest.fixture(scope="module")
def fixture_verses(raw_fixture):
    english = {r: bible.clean_osis(t) for r, t in raw_fixture[bible.ENGLISH_MODULE].items()}
    spanish = bible.clean_spanish({r: bible.clean_osis(t) for r, t in raw_fixture[bible.SPANISH_MODULE].items()})
    return english, spanish


# ---------------------------------------------------------------------------------------------------------------
# Markup, on real module text


@pytest.mark.parametrize("verse, expected", [
    # a footnote between two words goes with its text, and the words keep their space
    ("Gen 1:1", "In the beginning, God created the heavens and the earth."),
    # a footnote between two quotations: "only born Son", not "only bornSon"
    ("John 3:16", "For God so loved the world, that he gave his only born Son, that whoever believes in him "
                  "should not perish, but have eternal life."),
    # the space the module leaves around a footnote does not end up before the question mark
    ("Luke 12:6", "“Aren’t five sparrows sold for two assaria coins? Not one of them is forgotten by God."),
    # a psalm's canonical title stays (the Spanish verse 1 has it too); poetry lines and "Selah" are text
    ("Ps 3:1", "A Psalm by David, when he fled from Absalom his son. Yahweh, how my adversaries have increased! "
               "Many are those who rise up against me."),
    ("Ps 3:2", "Many there are who say of my soul, “There is no help for him in God.” Selah."),
    # a speaker label is no part of the verse
    ("Song 1:2", "Let him kiss me with the kisses of his mouth; for your love is better than wine."),
    # the glossary the module stores after the last verse is cut off
    ("Rev 22:21", "The grace of the Lord Jesus Christ be with all the saints. Amen."),
    # a list opened here and closed in a later verse (not well-formed on its own): the words are all there
    ("Ezra 8:2", "Of the sons of Phinehas, Gershom. Of the sons of Ithamar, Daniel. Of the sons of David, Hattush."),
])
def test_clean_osis_on_english_module_text(raw_fixture, verse, expected):
    raw = raw_fixture[bible.ENGLISH_MODULE][ref(verse)]
    assert "<" in raw
    assert bible.clean_osis(raw) == expected


@pytest.mark.parametrize("verse, expected", [
    ("Gen 1:1", "EN el principio crió Dios los cielos y la tierra."),
    # a translator's addition is written without spaces around it in the module
    ("Judg 4:2", "Y Jehová los vendió en mano de Jabín rey de Canaán, el cual reinó en Asor: y el capitán de su "
                 "ejército se llamaba Sísara, y él habitaba en Haroseth de las Gentes."),
    ("Ps 3:2", "Muchos dicen de mi vida: No hay para él salud en Dios. (Selah.)"),
    # the Spanish slot of Jonah 1:17 holds only the end-of-chapter markers: the verse is Jonah 2:1 there
    ("Jonah 1:17", ""),
])
def test_clean_osis_on_spanish_module_text(raw_fixture, verse, expected):
    assert bible.clean_osis(raw_fixture[bible.SPANISH_MODULE][ref(verse)]) == expected


def test_no_markup_is_left_in_any_fixture_verse(fixture_verses):
    for verses in fixture_verses:
        for text in verses.values():
            assert not set(text) & set("<>&\t\n\x00"), text
            assert text == " ".join(text.split())


def test_spanish_print_conventions_are_undone(fixture_verses):
    _, spanish = fixture_verses
    assert spanish[ref("Gen 1:1")].startswith("En el principio crió")  # the capitals of a chapter's first word
    assert spanish[ref("Gen 32:1")].startswith("Y Jacob se fué")
    assert "¡Oh Jehová, cuánto" in spanish[ref("Ps 3:1")]  # after the psalm's title
    assert spanish[ref("Rom 16:27")] == "Al solo Dios sabio, sea gloria por Jesucristo para siempre. Amén."
    # capitals inside a verse are the text's own, and stay
    assert bible.clean_spanish({("Exod", 6, 2): "Yo soy JEHOVÁ;"}) == {("Exod", 6, 2): "Yo soy JEHOVÁ;"}


# ---------------------------------------------------------------------------------------------------------------
# Alignment


def test_versification_table_pairs_each_verse_once():
    units = bible.versification_units()
    for side in (0, 1):
        refs = [r for unit in units for r in unit[side]]
        assert len(refs) == len(set(refs)), Counter(refs).most_common(3)
    for english, spanish in units:
        assert english and spanish
        assert {r[0] for r in (*english, *spanish)} == {english[0][0]}, (english, spanish)  # within one book


def test_jonah_pairs_through_the_versification_table(fixture_verses):
    pairs = {p.ref: p for p in bible.align(*fixture_verses)[0]}
    assert pairs["Jonah 1:16"].spanish.startswith("Y temieron aquellos hombres")
    assert pairs["Jonah 1:17"].spanish.startswith("Mas Jehová había prevenido un gran pez que tragase á Jonás")
    assert pairs["Jonah 2:1"].spanish == "Y oró Jonás desde el vientre del pez á Jehová su Dios,"
    assert pairs["Jonah 2:2"].spanish.startswith("Y dijo: Clamé de mi tribulación á Jehová")
    # the Spanish 2:10 holds the English 2:9-10: one pair
    assert pairs["Jonah 2:9-10"].english.endswith("it vomited out Jonah on the dry land.")
    assert pairs["Jonah 2:9-10"].spanish.endswith("y vomitó á Jonás en tierra.")
    assert "Jonah 2:9" not in pairs and "Jonah 2:10" not in pairs


def test_pairing_by_label_alone_pairs_the_wrong_verses(fixture_verses):
    """What the table is for: by label, Jonah's prayer pairs with the fish, and the lengths look fine."""
    pairs, dropped = bible.align(*fixture_verses, table=False)
    pairs = {p.ref: p for p in pairs}
    assert "Jonah 1:17" not in pairs and dropped["no Spanish text"] >= 1
    assert pairs["Jonah 2:1"].english.startswith("Then Jonah prayed")
    assert pairs["Jonah 2:1"].spanish.startswith("Mas Jehová había prevenido un gran pez")  # kept, and wrong


def test_pairs_without_a_translation_are_dropped_with_their_reason():
    english = {("Acts", 8, 36): "As they went on the way, they came to some water.",
               ("Acts", 8, 38): "He commanded the chariot to stand still.",
               ("Acts", 8, 39): "When they came up out of the water, the Spirit of the Lord caught Philip away.",
               ("Acts", 8, 40): "...",
               ("Matt", 1, 1): "x"}
    spanish = {("Acts", 8, 36): "Y yendo por el camino, llegaron á cierta agua.",
               ("Acts", 8, 37): "Y Felipe dijo: Si crees de todo corazón, bien puedes.",  # the WEB omits 8:37
               ("Acts", 8, 38): "Y mandó parar el carro: y descendieron ambos al agua, Felipe y el eunuco, y "
                                "bautizóle, y cuando subieron del agua, el Espíritu del Señor arrebató á Felipe.",
               ("Acts", 8, 39): "Y como subieron del agua, el Espíritu del Señor arrebató á Felipe.",
               ("Acts", 8, 40): "Felipe empero se halló en Azoto.",
               ("Matt", 1, 1): "y"}
    pairs, dropped = bible.align(english, spanish, table=False)
    assert [p.ref for p in pairs] == ["Matt 1:1", "Acts 8:36", "Acts 8:39"]  # canonical order
    assert dropped == Counter({"no English text": 1, "length ratio outside [0.5, 2.0]": 1, "a side without words": 1})


# ---------------------------------------------------------------------------------------------------------------
# The split and the files


def test_held_out_books_come_from_both_testaments_and_are_distinct():
    val, test = set(bible.HELD_OUT["val"]), set(bible.HELD_OUT["test"])
    assert not val & test and (val | test) <= set(bible.BOOKS)
    for books in (val, test):
        assert books & bible.NEW_TESTAMENT and books - bible.NEW_TESTAMENT
    assert {bible.split_of(b) for b in bible.BOOKS} == {"train", "val", "test"}


def read_split(folder: Path) -> dict[str, list[list[str]]]:
    return {s: [line.split("\t") for line in (folder / f"{s}.tsv").read_text(encoding="utf-8").splitlines()]
            for s in bible.SPLITS}


def check_split(rows: dict[str, list[list[str]]]) -> None:
    """No verse reference and no book on two sides; three columns, text on both sides."""
    seen_refs, seen_books = {}, {}
    for split, lines in rows.items():
        for cols in lines:
            assert len(cols) == 3 and cols[0] and cols[1], cols
            reference = cols[2]
            book = reference.split(" ")[0]
            assert seen_refs.setdefault(reference, split) == split, f"{reference} in {seen_refs[reference]} and {split}"
            assert seen_books.setdefault(book, split) == split, f"{book} in {seen_books[book]} and {split}"
            assert bible.split_of(book) == split


def test_written_split_keeps_references_and_books_apart(fixture_verses, tmp_path):
    pairs, dropped = bible.align(*fixture_verses)
    stats = bible.write_corpus(pairs, dropped, tmp_path, {})
    rows = read_split(tmp_path)
    check_split(rows)
    assert all(rows.values())  # the fixture has train (Genesis), val (Jonah) and test (Romans) verses
    assert stats["pairs"] == {s: len(rows[s]) for s in bible.SPLITS}
    assert json.loads((tmp_path / "stats.json").read_text(encoding="utf-8"))["pairs"] == stats["pairs"]


def test_seq2seq_data_module_reads_the_split_folder(fixture_verses, tmp_path):
    from genlab.data.seq2seq import Seq2SeqDataModule

    bible.write_corpus(*bible.align(*fixture_verses), tmp_path, {})
    dm = Seq2SeqDataModule(path=str(tmp_path), batch_size=4)
    dm.setup("fit")
    rows = read_split(tmp_path)
    assert dm.val_pairs == [(e, s) for e, s, _ in rows["val"]]
    assert dm.test_pairs == [(e, s) for e, s, _ in rows["test"]]
    assert len(dm.train_pairs) == len(rows["train"])


def test_missing_modules_say_what_to_install_in_one_line(tmp_path, capsys):
    from genlab.cli import main

    assert main(["data", "bible-eng-spa", "--modules", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "apt-get install sword-text-web sword-text-sparv" in err and "~/.sword" in err
    with pytest.raises(DataNotFoundError):
        bible.find_modules(tmp_path)


def test_cli_lists_the_data_command():
    from genlab.cli import usage

    assert "bible-eng-spa" in usage()


def test_data_help_answers_before_importing_torch():
    probe = ("import sys, contextlib, io\nfrom genlab.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(['data', 'bible-eng-spa', '--help'])\n    except SystemExit:\n        pass\n"
             "print('torch' in sys.modules)")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------------------
# The installed modules (Debian: sword-text-web, sword-text-sparv)


@pytest.fixture(scope="module")
def sword():
    try:
        return bible.find_modules()
    except DataNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def installed_verses(sword):
    english, spanish, _ = bible.load_bibles(sword)
    return english, spanish


def test_installed_modules_pair_jonah(installed_verses):
    pairs = {p.ref: p for p in bible.align(*installed_verses)[0]}
    assert "gran pez" in pairs["Jonah 1:17"].spanish and "huge fish" in pairs["Jonah 1:17"].english
    assert pairs["Jonah 2:1"].spanish.startswith("Y oró Jonás")
    assert pairs["Jonah 2:8"].spanish.startswith("Los que guardan las vanidades")  # "Those who regard vain idols"
    assert "vomitó" in pairs["Jonah 2:9-10"].spanish
    # the fixture is a faithful cut of the installed text
    english, spanish = installed_verses
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))[bible.SPANISH_MODULE]
    assert spanish[ref("Jonah 2:3")] == bible.clean_osis(raw["Jonah 2:3"])


def test_prepared_corpus_is_plausible_and_deterministic(sword, tmp_path, capsys):
    from genlab.tools.data import main

    digests = []
    for run in ("a", "b"):
        assert main(["bible-eng-spa", "--modules", str(sword), "--out", str(tmp_path / run)]) == 0
        digests.append({f: hashlib.sha256((tmp_path / run / f).read_bytes()).hexdigest()
                        for f in ("train.tsv", "val.tsv", "test.tsv", "stats.json", "README.md")})
    assert digests[0] == digests[1]
    assert "pairs in" in capsys.readouterr().out
    rows = read_split(tmp_path / "a")
    check_split(rows)
    total = sum(map(len, rows.values()))
    assert 30_500 <= total <= 31_200, total
    for split in ("val", "test"):
        assert 0.035 <= len(rows[split]) / total <= 0.065, (split, len(rows[split]))
    stats = json.loads((tmp_path / "a" / "stats.json").read_text(encoding="utf-8"))
    assert stats["dropped_total"] < 50, stats["dropped"]
    chars = sum(stats["english_chars"].values()) + sum(stats["spanish_chars"].values())
    assert 7_000_000 <= chars <= 8_000_000, chars
    # the seq2seq data module's reader takes the files as they are (quotes are text, not CSV quoting)
    with open(tmp_path / "a" / "val.tsv", encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)) == len(rows["val"])
