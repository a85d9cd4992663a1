"""scripts/bench_translation.py's bookkeeping: variants (--set) get their own rows, rows from another CPU never
share the table, and the table says how each variant was measured."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_translation.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_translation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(model, cpu="AMD EPYC", flags=("avx2",), bleu=10.0, overrides=None):
    r = {"model": model, "cpu": cpu, "cpu_flags": list(flags), "params_m": 5.0, "wall_s": 1800.0, "steps": 100,
         "train_tokens_per_s": 1000.0, "val_loss": 3.0, "test_bleu": bleu, "test_chrf": 30.0, "test_bleu_beam": bleu,
         "test_chrf_beam": 30.0, "precision": "32-true", "bleu_signature": "sig", "settings": {"threads": 2},
         "curve": [{"minutes": 5.0, "step": 50, "bleu": bleu / 2}, {"minutes": 30.0, "step": 100, "bleu": bleu}]}
    if overrides:
        r["set"] = overrides
    return r


def test_set_values_are_yaml_and_label_the_variant(bench):
    args = bench.parse_args(["--set", "model.init_args.n_enc_layer=3", "model.init_args.positional=sinusoidal"])
    assert args.set == {"model.init_args.n_enc_layer": 3, "model.init_args.positional": "sinusoidal"}
    assert bench.label("transformer", args.set) == "transformer n_enc_layer=3 positional=sinusoidal"
    assert bench.label("gru", {}) == "gru"


@pytest.mark.parametrize("item", ["n_enc_layer3", "=3"])
def test_set_without_key_and_value_is_refused_not_dropped(bench, item, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--set", item])
    assert e.value.code == 2
    assert f"--set '{item}': write KEY=VALUE" in capsys.readouterr().err


def test_table_keeps_variants_apart_and_only_the_latest_machine(bench, tmp_path):
    deeper = {"model.init_args.n_enc_layer": 3}
    rows = [row("transformer", cpu="Other CPU", bleu=1.0), row("transformer", bleu=12.0),
            row("transformer", bleu=14.0, overrides=deeper), row("decoder_only", bleu=13.0)]
    last = bench.latest(rows)
    assert list(last) == ["transformer", "decoder_only", "transformer n_enc_layer=3"]  # configs first, then variants
    assert last["transformer"]["test_bleu"] == 12.0  # the other CPU's row is not this machine's

    bench.render(rows, tmp_path)
    table = (tmp_path / "bench.md").read_text()
    assert "| transformer n_enc_layer=3 | 5.0 |" in table and "Other CPU" not in table
    assert "`--models transformer --set model.init_args.n_enc_layer=3`" in table
    assert (tmp_path / "val_bleu.png").stat().st_size > 0


def test_the_table_says_each_rows_depth(bench):
    """The config's depth changed (2+2 -> 1+3): a row says the layers it was measured with, from the row itself
    (recorded at measurement) or from its --set overrides, never from today's config."""
    assert bench.depth({**row("transformer"), "layers": [2, 2]}) == "2+2"
    assert bench.depth(row("transformer", overrides={"model.init_args.n_enc_layer": 1,
                                                     "model.init_args.n_dec_layer": 3})) == "1+3"
    assert bench.depth({**row("decoder_only"), "layers": [2, 2]}) == "4"  # one stack of n_enc + n_dec layers
    assert bench.depth(row("gru")) == "?"
    assert bench.shown(row("transformer", overrides={"model.init_args.n_enc_layer": 1, "model.init_args.n_dec_layer": 3,
                                                     "model.init_args.dropout": 0.2})) == "transformer 1+3 dropout=0.2"
    assert bench.shown({**row("decoder_only"), "layers": [2, 2]}) == "decoder_only 4"
