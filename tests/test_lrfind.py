"""fine_tune.base_lr by lr_find: how the found rate reaches the jobs, and how the report shows it (no training here)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from epochbench import jobs, lrfind, plots, report

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "reports" / "templates" / "report.html.j2"
FT = dict(base_lr="valley", freeze_epochs=1, lr_mult=100)


def lr_find_result(tmp_path, arch="netA", suggestion="valley", lr=1.5e-3) -> Path:
    path = tmp_path / f"{arch}.json"
    path.write_text(json.dumps(dict(
        architecture=arch, suggestion=suggestion, lr=lr, seed=0, train_images=64, iterations=90, num_it=100,
        suggestions=dict(minimum=7e-3, slide=5e-3, steep=3e-5, valley=lr),
    )))
    (tmp_path / f"{arch}.csv").write_text(
        "lr,loss\n" + "".join(f"{r:.8g},{2.4 - 0.1 * i / 30:.8g}\n" for i, r in enumerate(np.geomspace(1e-7, 1, 40))))
    return path


def test_the_found_rate_replaces_the_suggestion_name(tmp_path):
    result = lr_find_result(tmp_path)
    assert lrfind.with_found_rate(dict(FT), result) == dict(FT, base_lr=1.5e-3)
    # A number needs no lr_find; from_scratch cells get no result and keep the name, which they never train at.
    assert lrfind.with_found_rate(dict(FT, base_lr=0.01), result) == dict(FT, base_lr=0.01)
    assert lrfind.with_found_rate(dict(FT), []) == FT
    with pytest.raises(ValueError, match="lr_find result"):
        lrfind.check_rate(FT)
    lrfind.check_rate(dict(FT, base_lr=0.01))
    with pytest.raises(ValueError, match="'steep'"):
        lrfind.with_found_rate(dict(FT, base_lr="steep"), result)


def fake_snakemake(tmp_path, lr_find=None, **params):
    """What Snakemake hands a rule's script, for the rules `train`, `frozen_fit` and `lr_find`."""
    settings = dict(pretrained="none", fine_tune=dict(FT), batch_size=16, device="cpu", deterministic=False,
                    precision="fp32", channels_last=False, num_workers=0, dataset=dict(name="digits"))
    settings.update(params)
    return SimpleNamespace(
        input=SimpleNamespace(data=[f"{tmp_path}/data/target/images.npy"], weights=[], lr_find=lr_find or []),
        params=SimpleNamespace(**settings), wildcards=SimpleNamespace(arch="netA", seed="3"), threads=1,
        config=dict(jobs_per_gpu=1),
    )


def test_training_jobs_read_the_rate_and_build_the_learner_as_lr_find_does(tmp_path):
    result = lr_find_result(tmp_path)
    cell = jobs.learner_settings(fake_snakemake(tmp_path, lr_find=str(result), augment=dict(max_rotate=5)))
    assert cell["fine_tune_args"]["base_lr"] == 1.5e-3 and cell["seed"] == 3
    assert cell["settings"]["augment"] == dict(max_rotate=5) and cell["data_dir"] == f"{tmp_path}/data/target"
    # The param only exists when on.
    assert jobs.learner_settings(fake_snakemake(tmp_path))["settings"]["augment"] is False
    finder = jobs.lr_find_settings(fake_snakemake(tmp_path, augment=True, suggestion="valley", seed=0))
    assert finder["suggestion"] == "valley" and finder["seed"] == 0 and "fine_tune_args" not in finder
    # Everything else that builds the learner is the same.
    shared = set(finder) - {"suggestion", "seed"}
    assert shared == set(cell) - {"fine_tune_args", "seed"}


def test_a_job_builds_its_learner_from_the_params_that_rerun_it(tmp_path):
    config = dict(batch_size=8, device="cpu", deterministic=True, precision="bf16", channels_last=True, num_workers=2,
                  dataset=dict(name="digits"), augment=False, jobs_per_gpu=3)
    params = jobs.learner_params(config)
    assert "augment" not in params and "jobs_per_gpu" not in params  # neither reruns a finished job
    job = fake_snakemake(tmp_path, **params)
    job.config = config
    assert jobs.learner_settings(job)["settings"] == dict(config, threads=1)
    on = dict(config, augment=dict(max_rotate=5))
    assert jobs.learner_params(on)["augment"] == dict(max_rotate=5)


def test_the_report_states_each_rate_and_the_template_escapes_it(tmp_path):
    results, curves = lrfind.read_results([lr_find_result(tmp_path)], [tmp_path / "netA.csv"])
    assert list(curves["architecture"].unique()) == ["netA"] and len(curves) == 40
    config = dict(experiment="x", split="per_seed", seeds=[0, 1], fine_tune=dict(base_lr="valley", lr_mult=10))
    context = report.lr_find_context(results, config)
    row = context["lr_find"][0]
    assert row["sentence"] == ("netA: base_lr = 0.0015, fastai's valley suggestion from lr_find on replicate 0's "
                               "64 training images (90 batches).")
    assert row["lr"] == "0.0015" and row["unfrozen"] == "0.00075 (first layers 7.5e-05)"
    assert row["others"] == "minimum 0.007, slide 0.005, steep 3e-05"
    assert "other replicates" in context["lr_find_note"]
    assert report.lr_find_context(results.iloc[:0], config) == dict(lr_find=[], lr_find_note="")
    from test_report import minimal_context

    evil = "<script>alert('x')</script>"
    page = report.render(TEMPLATE, dict(minimal_context(evil), lr_find=[dict(row, architecture=evil, sentence=evil)],
                                        lr_find_note=evil))
    assert 'id="lr-find-table"' in page and "<script>" not in page
    assert 'id="lr-find-table"' not in report.render(TEMPLATE, minimal_context("x"))  # base_lr a number: no section


def test_lr_find_figure_marks_the_chosen_rate(tmp_path):
    results, curves = lrfind.read_results([lr_find_result(tmp_path, "netA"), lr_find_result(tmp_path, "netB", lr=2e-2)],
                                          [tmp_path / "netA.csv", tmp_path / "netB.csv"])
    paths = plots.plot_lr_find(results, curves, tmp_path / "figures" / "lr_find")
    assert [p.suffix for p in paths] == [".svg", ".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    svg = ET.parse(paths[0]).getroot()
    ids = {element.get("id") for element in svg.iter()}
    assert {"lr-find-chosen-netA", "lr-find-chosen-netB", "lr-find-curve-netA"} <= ids
    assert "lr_find" in report.FIGURE_CAPTIONS  # the report captions it
    again = plots.plot_lr_find(results, curves, tmp_path / "again" / "lr_find")
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again) if a.suffix != ".png")
    assert pd.read_csv(tmp_path / "netA.csv").shape == (40, 2)
