import json

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.artifacts import load_classifier, load_generator, save_classifier
from pipeline.checkpoint import load_checkpoint
from pipeline.cli import app
from pipeline.data import load_dataset
from pipeline.params import load_params
from tests.conftest import CLASSIFICATION_METHODS, REGRESSION_METHODS, tiny_raw_params

runner = CliRunner()
STAGES = ["prepare", "teacher", "evalnets", "gan", "features", "dre", "synthesize", "student", "evaluate"]
REGRESSION_STAGES = [
    "prepare",
    "embed",
    "teacher",
    "gan",
    "features",
    "dre",
    "synthesize",
    "student",
    "evalnets",
    "evaluate",
]


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [*REGRESSION_STAGES, "report"]:
        assert name in result.output


def test_bad_param_is_one_line_exit_2_nothing_written(tmp_path):
    raw = tiny_raw_params()
    raw["experiments"]["tiny"]["gan"]["stepz"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, ["prepare", "-e", "tiny", "-p", str(tmp_path / "params.yaml"), "--root", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: params: experiments.tiny.gan.stepz: unknown key"
    assert list(out.iterdir()) == []


def test_unknown_experiment(tiny_params_file, tmp_path):
    result = runner.invoke(app, ["teacher", "-e", "nope", "-p", str(tiny_params_file), "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "experiments.nope: no such experiment (known: tiny)" in result.output


def test_stage_without_its_inputs_is_a_clear_error(tiny_params_file, tmp_path):
    result = runner.invoke(app, ["teacher", "-e", "tiny", "-p", str(tiny_params_file), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "prepared" in result.output
    assert "Traceback" not in result.output


def test_whole_pipeline_in_process(tmp_path):
    raw = tiny_raw_params()
    raw["experiments"]["tiny"]["student"]["methods"] = list(CLASSIFICATION_METHODS)
    tiny_params_file = tmp_path / "params.yaml"
    tiny_params_file.write_text(yaml.safe_dump(raw))
    root = tmp_path / "repo"
    for stage in STAGES:
        result = runner.invoke(app, [stage, "-e", "tiny", "-p", str(tiny_params_file), "--root", str(root)])
        assert result.exit_code == 0, (stage, result.output)
    summary = json.loads((root / "metrics" / "tiny.json").read_text())
    head = json.loads((root / "metrics" / "tiny" / "headline.json").read_text())
    assert (
        head["real_only"] == summary["students"]["real_only"]["test_accuracy"]
        and head["gan"] == summary["gan_equal_labels"]["cgan"]["fid_evalnet"]
    )
    # every KD method, with real data only and with the synthetic set, and TAKD's assistant
    methods = set(CLASSIFICATION_METHODS)
    on_fakes = {"cgan_kd", *(f"cgan_kd_{m}" for m in methods)}
    # (params.yaml's student.init: each student on fakes also fine-tuned from its real-data twin)
    assert set(summary["students"]) == {"real_only", "assistant", *methods, *on_fakes, *(f"{n}_ft" for n in on_fakes)}
    assert (root / "models" / "tiny" / "students" / "assistant.pt").exists()
    table = (root / "metrics" / "tiny.md").read_text()
    assert all(
        f"| {row} |" in table
        for row in (
            "cGAN-KD + CRD",
            "FitNet",
            "teacher assistant (TAKD)",
            "cGAN-KD + TAKD",
            "cGAN-KD + TAKD, fine-tuned from TAKD",
        )
    )
    for r in summary["students"].values():
        assert 0.0 <= r["test_accuracy"] <= 1.0
    assert set(summary["gan"]) == {"cgan", "cgan+dre", "cgan+cdre"}  # plain fakes, DRE-F-SP+RS, cDRE-F-cSP+RS
    assert all(m["fid_evalnet"] >= 0 and m["is_evalnet"] >= 1 for m in summary["gan"].values())
    # judged by the evaluation classifier, which is neither the teacher nor DRE's feature net
    assert (root / "models" / "tiny" / "eval_nets" / "classifier.pt").exists()
    assert {"fid_evalnet_real_train_vs_test", "is_evalnet_real_test"} <= set(summary["reference"])
    assert 0 < summary["gan"]["cgan+cdre"]["acceptance_rate"] <= 1
    # the synthetic set was drawn through cDRE-F-cSP+RS (params.yaml's choice); its metadata is an output
    rs = json.loads((root / "data" / "tiny" / "synthetic" / "subsampling.json").read_text())
    assert rs["method"] == "cdre" and len(rs["per_label"]["acceptance_rate"]) == 10 and rs["n_accepted"] == 100
    assert (root / "data" / "tiny" / "synthetic" / "accepted_vs_rejected.png").stat().st_size > 0
    # the cGAN-KD students saw real + kept fakes
    n_real = summary["students"]["real_only"]["n_train"]
    n_kept = json.loads((root / "metrics" / "tiny" / "synthesize.json").read_text())["n_kept"]
    assert summary["students"]["cgan_kd"]["n_train"] == n_real + n_kept
    assert (root / "metrics" / "tiny" / "gan_samples.png").stat().st_size > 0
    report = runner.invoke(app, ["report", "-p", str(tiny_params_file), "--root", str(root)])
    assert report.exit_code == 0 and "| cGAN-KD + BLKD |" in report.output
    # the report ends with the claims on this one seed, each line PASS or MISS with its margin
    assert "## Claims on this run (seed 0 only" in report.output
    kd = next(line for line in report.output.splitlines() if line.startswith("| tiny | cGAN-KD > real only"))
    margin = summary["students"]["cgan_kd"]["test_accuracy"] - summary["students"]["real_only"]["test_accuracy"]
    assert kd.endswith("| PASS |" if margin > 0 else "| MISS |") and f"{margin:+.3g}" in kd

    # a user's own generator checkpoint, subsampled outside the pipeline
    out = tmp_path / "mine" / "fakes"
    args = [
        "subsample",
        "-e",
        "tiny",
        "-p",
        str(tiny_params_file),
        "--root",
        str(root),
        "-o",
        str(out),
        "-m",
        "dre",
        "-n",
        "3",
    ]
    result = runner.invoke(app, [*args, "-g", str(root / "models" / "tiny" / "gan" / "cgan.pt")])
    assert result.exit_code == 0, result.output
    blob = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert (
        blob["x"].shape[0] == 30
        and sorted(blob["y"].tolist()) == sorted(list(range(10)) * 3)
        and (blob["psi"] >= 0).all()
    )
    rs = json.loads(out.with_suffix(".json").read_text())
    assert rs["method"] == "dre" and 0 < rs["acceptance_rate"] <= 1 and "auc_real_vs_fake" in rs["ratio"]
    assert out.with_suffix(".png").stat().st_size > 0
    result = runner.invoke(app, [*args, "-g", str(tmp_path / "nope.pt")])
    assert result.exit_code == 1 and "nope.pt: generator checkpoint not found" in result.output
    result = runner.invoke(app, [*args, "-g", str(root / "models" / "tiny" / "teacher.pt")])
    assert (
        result.exit_code == 1
        and "teacher.pt: not a generator checkpoint" in result.output
        and "Traceback" not in result.output
    )
    result = runner.invoke(app, [*args[:-4], "-m", "rs", "-g", str(out.with_suffix(".pt"))])
    assert result.exit_code == 2 and "--method 'rs'" in result.output

    # fakes at the classes a user names, one row of the picture per class; a bad class is one line, nothing written
    out = tmp_path / "gen" / "digits"
    gen = ["generate", "-e", "tiny", "-p", str(tiny_params_file), "--root", str(root), "-o", str(out)]
    result = runner.invoke(app, [*gen, "-l", "7", "-l", "3", "-n", "2"])
    assert result.exit_code == 0, result.output
    blob = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert blob["y"].tolist() == [7, 7, 3, 3] and blob["x"].shape[0] == 4 and blob["variant"] == "cgan"
    for bad, message in (
        (["-l", "12"], "--label 12: not a class of tiny (0..9)"),
        (["-l", "2.5"], "--label 2.5: not a class"),
        (["-v", "svdl"], "--variant 'svdl': not a GAN variant of tiny (cgan)"),
    ):
        result = runner.invoke(app, [*gen[:-1], str(tmp_path / "bad" / "x"), *bad])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, (
            bad,
            result.output,
        )
    assert not (tmp_path / "bad").exists()

    # the benchmark prints accepted fakes per second, the acceptance rate and peak memory at N and 10 N
    result = runner.invoke(app, ["bench-subsample", "-p", str(tiny_params_file), "--root", str(root), "--n-fake", "20"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.count("accepted fakes/s") == 2
        and "tiny cdre+RS: 20 fakes" in result.output
        and "tiny cdre+RS: 200 fakes" in result.output
    )

    # bench-dre: ratio-net steps per second with new fakes for every batch and with the params' blocks, and
    # what a step spends on generating, features and the update; without the upstream outputs, one line
    result = runner.invoke(app, ["bench-dre", "-p", str(tiny_params_file), "--root", str(root), "--steps", "8"])
    assert result.exit_code == 0, result.output
    assert "per_batch (block 1, reuse 1, max redraws 10): 8 steps of batch 16" in result.output
    assert "params (block 16, reuse 4, max redraws 10)" in result.output and result.output.count("generating") == 2
    assert "x the steps per second of new fakes for every batch" in result.output
    result = runner.invoke(app, ["bench-dre", "-p", str(tiny_params_file), "--root", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "features.pt not found: run `dvc repro dre@tiny`" in result.output

    # rerunning the GAN stage with the same params resumes at the end: no new steps
    result = runner.invoke(app, ["gan", "-e", "tiny", "-p", str(tiny_params_file), "--root", str(root)])
    assert result.exit_code == 0 and "resuming from step 6 of 6" in result.output

    # a damaged checkpoint is one clear line, not a traceback
    ckpt = root / "models" / "tiny" / "gan" / "cgan.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    result = runner.invoke(app, ["gan", "-e", "tiny", "-p", str(tiny_params_file), "--root", str(root)])
    assert result.exit_code == 1
    assert "cgan.pt: unreadable checkpoint" in result.output and "delete it to train from scratch" in result.output
    assert "Traceback" not in result.output


def _run_all(stages: list[str], name: str, params_file, root) -> None:
    for stage in stages:
        result = runner.invoke(app, [stage, "-e", name, "-p", str(params_file), "--root", str(root)])
        assert result.exit_code == 0, (stage, result.output)


def test_regression_pipeline_in_process(tmp_path):
    params_file = tmp_path / "params.yaml"
    raw = tiny_raw_params("regression")
    raw["experiments"]["tiny_reg"]["student"].update(
        variants=["real_only", "cgan_kd", "cgan_kd_adjusted", "oracle"],
        keep_best=True,
        eval_every=5,
        methods=list(REGRESSION_METHODS),
    )
    params_file.write_text(yaml.safe_dump(raw))
    root = tmp_path / "repo"
    _run_all(REGRESSION_STAGES, "tiny_reg", params_file, root)
    summary = json.loads((root / "metrics" / "tiny_reg.json").read_text())
    assert set(summary["gan"]) == {"svdl_ili", "svdl_ili+dre", "svdl_ili+cdre", "hvdl_nli", "binned"}
    for m in summary["gan"].values():
        assert 0 <= m["label_score"] <= 90 and m["intra_fid_eval_regressor_features"] >= 0 and m["diversity"] >= 0
    data = ("real_only", "cgan_kd", "cgan_kd_adjusted", "oracle")
    with_methods = {m if d == "real_only" else f"{d}_{m}" for d in data for m in REGRESSION_METHODS}
    assert set(summary["students"]) == {*data, *with_methods}
    n_kept = json.loads((root / "metrics" / "tiny_reg" / "synthesize.json").read_text())["n_kept"]
    assert summary["students"]["cgan_kd"]["n_train"] == summary["students"]["real_only"]["n_train"] + n_kept
    assert (
        summary["students"]["oracle"]["n_train"] == summary["students"]["cgan_kd"]["n_train"]
    )  # as many perfect fakes as kept ones
    assert all(
        r["best_step"] in (5.0, 10.0) for r in summary["students"].values()
    )  # keep_best: judged at its best validation step
    # the subsampled variant's rows again on the labels all of them filled
    equal = summary["gan_equal_labels"]
    assert (
        set(equal) == {"svdl_ili", "svdl_ili+dre", "svdl_ili+cdre"}
        and len({r["n_labels"] for r in equal.values()}) == 1
    )
    if not any(summary["gan"][v]["labels_short"] for v in ("svdl_ili+dre", "svdl_ili+cdre")):
        assert equal["svdl_ili"]["label_score"] == summary["gan"]["svdl_ili"]["label_score"]
    # label noise of the synthetic set, by the evaluation regressor, by hand
    ds = load_dataset(root / "data" / "tiny_reg" / "prepared")
    fakes = torch.load(root / "data" / "tiny_reg" / "synthetic" / "fakes.pt", weights_only=True)
    regressor = load_classifier(root / "models" / "tiny_reg" / "eval_nets" / "regressor.pt")
    with torch.no_grad():
        pred = ds.denormalise(regressor(fakes["x"].float()).view(-1))
    noise = summary["synthetic"]
    assert noise["n_kept"] == n_kept
    assert noise["label_noise_cond"] == pytest.approx(
        float((pred - ds.denormalise(fakes["y_cond"])).abs().mean()), rel=1e-5
    )
    assert noise["label_noise_adjusted"] == pytest.approx(
        float((pred - ds.denormalise(fakes["y_teacher"])).abs().mean()), rel=1e-5
    )
    for variant in ("svdl_ili", "hvdl_nli", "binned"):
        assert (root / "models" / "tiny_reg" / "gan" / f"{variant}.pt").exists()
        assert (root / "metrics" / "tiny_reg" / f"gan_samples_{variant}.png").stat().st_size > 0
    report = (root / "metrics" / "tiny_reg.md").read_text()
    assert "| cGAN-KD (label adjustment) |" in report
    by_bin = (
        report[report.index("Label Score within each label bin") :].split("\n\n")[1].splitlines()
    )  # header, rule, one row per GAN
    assert sorted(row.split(" | ")[0] for row in by_bin[2:]) == sorted(f"| {v}" for v in summary["gan"])
    n_bins = load_params(params_file).experiment("tiny_reg").evaluate.n_bins
    assert len(by_bin[0].split(" | ")) == 1 + n_bins and all(len(row.split(" | ")) == 1 + n_bins for row in by_bin[2:])

    # fakes at labels in the label's units (degrees): G gets them normalised to [0, 1], with its own
    # latent draws, and they come back grouped by label in the order given, one picture row per label
    exp = load_params(params_file).experiment("tiny_reg")
    ds = load_dataset(root / "data" / "tiny_reg" / "prepared")
    out = tmp_path / "gen" / "chairs"
    gen = ["generate", "-e", "tiny_reg", "-p", str(params_file), "--root", str(root), "-o", str(out)]
    result = runner.invoke(app, [*gen, "-l", "45.5", "-l", "10", "-n", "3", "--seed", "7"])
    assert result.exit_code == 0, result.output
    blob = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert (
        blob["y"].tolist() == [45.5] * 3 + [10.0] * 3
        and blob["variant"] == exp.dre_variant
        and blob["n_per_label"] == [3, 3]
    )
    G = load_generator(root / "models" / "tiny_reg" / "gan" / f"{exp.dre_variant}.pt")
    torch.manual_seed(7)
    with torch.no_grad():
        expected = G(torch.randn(6, exp.gan.z_dim), ds.normalise(blob["y"]))
    assert torch.allclose(blob["x"], expected, atol=1e-6)
    h, w = blob["x"].shape[2:]
    assert Image.open(out.with_suffix(".png")).size == (
        4 * (3 * (w + 1) + 1),
        4 * (2 * (h + 1) + 1),
    )  # 3 columns, 2 rows, x4
    # through the dre stage's cDRE-F-cSP+RS; the binned baseline's generator takes degrees too
    result = runner.invoke(app, [*gen, "-l", "30", "-n", "2", "-m", "cdre"])
    assert result.exit_code == 0, result.output
    blob = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert set(blob["y"].tolist()) <= {30.0} and blob["subsampling"] == "cdre" and 0 < blob["acceptance_rate"] <= 1
    result = runner.invoke(app, [*gen, "-v", "binned"])
    assert result.exit_code == 0 and torch.load(out.with_suffix(".pt"), weights_only=True)["x"].shape[0] == 10 * 8
    bad_cases = (
        (["-l", "120"], "--label 120: outside tiny_reg's label range [0, 90]"),
        (["-l", "10", "-l", "10"], "--label 10 given twice"),
        (["-v", "nope"], f"--variant 'nope': not a GAN variant of tiny_reg ({', '.join(exp.gan.variants)})"),
        (["-v", "binned", "-m", "cdre"], f"trained on the fakes of '{exp.dre_variant}', not of 'binned'"),
        (["-m", "rs"], "--subsample 'rs': use none, dre, cdre"),
        (["-g", str(tmp_path / "nope.pt")], "nope.pt: generator checkpoint not found"),
    )
    for bad, message in bad_cases:
        result = runner.invoke(app, [*gen[:-1], str(tmp_path / "bad" / "x"), *bad])
        assert result.exit_code in (1, 2) and message in result.output and "Traceback" not in result.output, (
            bad,
            result.output,
        )
    assert not (tmp_path / "bad").exists()

    # without the evalnets stage's nets, evaluate stops with a one-line error that names the stage
    (root / "models" / "tiny_reg" / "eval_nets" / "regressor.pt").rename(root / "regressor.pt")
    result = runner.invoke(app, ["evaluate", "-e", "tiny_reg", "-p", str(params_file), "--root", str(root)])
    assert (
        result.exit_code == 1
        and result.output.startswith("error: ")
        and "run the evalnets stage first" in result.output
    )
    (root / "regressor.pt").rename(root / "models" / "tiny_reg" / "eval_nets" / "regressor.pt")

    # evaluate judges with the evalnets stage's saved nets, it does not train its own: a regressor
    # that predicts the label range's midpoint for every image gives the hand-computed Label Score
    nets = root / "models" / "tiny_reg" / "eval_nets"
    assert (nets / "classifier.pt").exists() and json.loads(
        (root / "metrics" / "tiny_reg" / "evalnets.json").read_text()
    )["regressor_train_mae"] >= 0
    regressor = load_classifier(nets / "regressor.pt")
    with torch.no_grad():
        regressor.head.weight.zero_()
        regressor.head.bias.fill_(0.5)  # normalised labels: the midpoint of the range
    save_classifier(regressor, nets / "regressor.pt", net="cnn", in_channels=1, num_classes=1, width=4)
    _run_all(["evaluate"], "tiny_reg", params_file, root)
    ds = load_dataset(root / "data" / "tiny_reg" / "prepared")
    midpoint = float(ds.denormalise(torch.tensor([0.5])))
    expected = float((ds.y_test - midpoint).abs().mean())
    assert json.loads((root / "metrics" / "tiny_reg.json").read_text())["reference"]["label_score"] == pytest.approx(
        expected, rel=1e-5
    )


def test_circle_pipeline_in_process(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_raw_params("circle")))
    root = tmp_path / "repo"
    _run_all(["prepare", "embed", "gan", "features", "dre", "evaluate"], "tiny_circle", params_file, root)
    summary = json.loads((root / "metrics" / "tiny_circle.json").read_text())
    assert set(summary["gan"]) == {"hvdl", "svdl_ili", "svdl_ili+dre", "svdl_ili+cdre", "binned"}
    for m in summary["gan"].values():
        assert 0 <= m["pct_high_quality"] <= 100 and 0 <= m["pct_recovered_modes"] <= 100 and m["w2"] >= 0
    # the ILI variant's G and D carry the embed stage's y2h, frozen
    y2h = load_checkpoint(root / "models" / "tiny_circle" / "embed.pt")["y2h"]
    state = load_checkpoint(root / "models" / "tiny_circle" / "gan" / "svdl_ili.pt")["state"]
    for net, prefix in (("G_ema", "label.y2h."), ("D", "label.y2h.")):
        for k, v in y2h.items():
            assert torch.equal(state[net][prefix + k], v), (net, k)
    result = runner.invoke(app, ["teacher", "-e", "tiny_circle", "-p", str(params_file), "--root", str(root)])
    assert result.exit_code == 2 and "no teacher" in result.output
    # points at angles in radians, pictured over the circle
    out = tmp_path / "gen" / "circle"
    gen = ["generate", "-e", "tiny_circle", "-p", str(params_file), "--root", str(root), "-o", str(out)]
    result = runner.invoke(app, [*gen, "-l", "1", "-l", "4", "-n", "5", "-v", "hvdl"])
    assert result.exit_code == 0, result.output
    blob = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert blob["x"].shape == (10, 2) and blob["y"].tolist() == [1.0] * 5 + [4.0] * 5
    assert Image.open(out.with_suffix(".png")).size == (500, 500)
    result = runner.invoke(app, [*gen, "-l", "7"])
    assert result.exit_code == 2 and "--label 7: outside tiny_circle's label range [0, 6.28319]" in result.output


def test_bench_circle_prints_iterations_per_second(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_raw_params("circle", "classification")))
    threads = torch.get_num_threads()
    result = runner.invoke(
        app,
        ["bench-circle", "-e", "tiny_circle", "--steps", "20", "--threads", str(threads + 1), "-p", str(params_file)],
    )
    assert result.exit_code == 0, result.output
    assert f"{threads + 1} thread(s)" in result.output and torch.get_num_threads() == threads  # put back afterwards
    assert (
        "hvdl (eager): 20 iterations (batch 16)" in result.output
        and "it/s" in result.output
        and "2-Wasserstein" in result.output
    )
    assert "first 10 iterations" in result.output
    assert "svdl_ili: skipped" in result.output
    result = runner.invoke(
        app, ["bench-circle", "-e", "tiny_circle", "--steps", "12", "--compile", "-p", str(params_file)]
    )
    assert result.exit_code == 0, result.output
    assert "hvdl (compiled): 12 iterations" in result.output
    result = runner.invoke(app, ["bench-circle", "-e", "tiny_circle", "--steps", "10", "-p", str(params_file)])
    assert result.exit_code == 2 and "--steps" in result.output  # the warm-up alone is 10 iterations
    result = runner.invoke(app, ["bench-circle", "-e", "tiny", "-p", str(params_file)])
    assert result.exit_code == 2 and "needs a circle experiment" in result.output


def test_bench_gan_measures_every_gan_of_a_profile_on_data_of_its_shape(tmp_path, monkeypatch):
    import re

    raw = tiny_raw_params("classification", "regression")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)  # nothing is read from data/ or written anywhere
    result = runner.invoke(app, ["bench-gan", "-p", "params.yaml", "--iterations", "2", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert "device cpu, 1 process(es)" in result.output
    lines = {
        m[0]: m
        for m in re.findall(
            r"^(\w+): .*?batch (\d+), n_dis (\d+): ([\d.]+) it/s .*? ([\d.]+) generated samples/s, peak RSS (\d+) MB",
            result.output,
            re.M,
        )
    }
    assert set(lines) == {"cgan", "svdl_ili", "hvdl_nli", "binned"}  # the class GAN and every CcGAN variant
    for _, batch, n_dis, it_s, samples_s, peak in lines.values():
        assert float(it_s) > 0 and int(peak) > 0
        per_it = int(batch) * (int(n_dis) + 1)  # generated samples per iteration; it/s is printed to 0.01
        assert float(samples_s) == pytest.approx(float(it_s) * per_it, abs=0.005 * per_it + 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
    result = runner.invoke(app, ["bench-gan", "-p", "params.yaml", "-e", "nope"])
    assert result.exit_code == 2 and "experiments.nope: no such experiment" in result.output


def test_bench_student_times_each_kd_method_with_and_without_the_teacher_cache(tmp_path, monkeypatch):
    import re

    raw = tiny_raw_params("classification", "regression")
    raw["experiments"]["tiny"]["student"]["methods"] = ["blkd", "takd"]
    raw["experiments"]["tiny_reg"]["student"]["methods"] = ["fitnet"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)  # nothing is read from data/ or written anywhere
    args = ["bench-student", "-p", "params.yaml", "--steps", "4", "--n-real", "16", "--n-fake", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    pattern = r"^(\w+): 4 steps .* from (\w+) w\d+, 16 reals \+ 8 fakes\): .* ([\d.]+) s, .* ([\d.]+) s \(([\d.]+)x\)"
    lines = {m[0]: m for m in re.findall(pattern, result.output, re.M)}
    tiny = load_params(tmp_path / "params.yaml").experiment("tiny")
    # every method of both experiments; TAKD distils the assistant's net, the others the teacher's
    assert set(lines) == {"blkd", "takd", "fitnet"}, result.output
    assert lines["takd"][1] == tiny.student.takd.net and lines["blkd"][1] == tiny.teacher.net
    assert "## tiny (classification)" in result.output and "## tiny_reg (regression)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
    result = runner.invoke(app, ["bench-student", "-p", "params.yaml", "-e", "tiny_circle"])
    assert result.exit_code == 2 and "experiments.tiny_circle" in result.output


def test_seeds_runs_each_seed_as_one_pipeline_run(tmp_path, monkeypatch):
    import os

    import mlflow

    monkeypatch.delenv("CGANKD_PIPELINE_RUN_ID", raising=False)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_raw_params("circle")))
    out = tmp_path / "seeds"
    result = runner.invoke(
        app, ["seeds", "-e", "tiny_circle", "-s", "3", "-s", "4", "--out", str(out), "-p", str(params_file)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tiny_circle_seeds.json").read_text())
    assert summary["seeds"] == [3, 4] and (out / "seed3").is_dir() and (out / "seed4").is_dir()
    runs = mlflow.search_runs(
        experiment_names=["cgankd/tiny_circle"], filter_string="tags.pipeline_run_id LIKE 'seeds-%'"
    )
    ids = set(runs["tags.pipeline_run_id"])
    assert len(ids) == 2 and {i.rsplit("-", 1)[1] for i in ids} == {"seed3", "seed4"}
    # every stage of a seed shares its id (prepare logs no run)
    assert (runs.groupby("tags.pipeline_run_id")["tags.stage"].nunique() >= 4).all()
    assert "CGANKD_PIPELINE_RUN_ID" not in os.environ  # the command leaves the environment as it was


def test_claims_runs_each_seed_once_and_prints_the_table(tmp_path, monkeypatch):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_raw_params("circle")))
    out = tmp_path / "claims"
    args = ["claims", "-p", str(params_file), "-s", "0", "-s", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--workers", "2"])  # each seed in a one-thread process of its own
    assert result.exit_code == 0, result.output
    assert all("claims: tiny_circle, seeds" in (out / "logs" / f"seed{s}.log").read_text() for s in (0, 1))
    table = (out / "claims.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| tiny_circle |")]
    # per CcGAN variant: modes and 2-Wasserstein against binned; then cDRE against no subsampling
    assert len(lines) == 5 and all(
        line.endswith(("| PASS |", "| MISS |", "| PASS (inside the seed spread) |")) for line in lines
    )
    assert "Claims over seeds 0, 1" in table and f"{params_file}" in table and table.strip() in result.output
    verdicts = json.loads((out / "claims.json").read_text())
    assert all(len(v["margins"]) == 2 for v in verdicts)
    # a rerun reads the finished seeds back instead of training again; --fresh starts over
    import pipeline.stages.gan as gan_stage

    def refuse(*_a, **_k):
        raise AssertionError("the gan stage ran again")

    monkeypatch.setattr(gan_stage, "run", refuse)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "claims.md").read_text() == table
    # --from-stage reruns one experiment from a stage on, reusing what came before it
    import pipeline.stages.evaluate as evaluate_stage

    ran, evaluate = [], evaluate_stage.run
    monkeypatch.setattr(evaluate_stage, "run", lambda p, e, paths: ran.append(p.seed) or evaluate(p, e, paths))
    result = runner.invoke(app, [*args, "--from-stage", "tiny_circle:evaluate"])
    assert result.exit_code == 0, result.output
    assert ran == [0, 1]
    result = runner.invoke(app, [*args, "--from-stage", "tiny_circle:evaluate", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert ran == [0, 1]  # the workers reran evaluate; this process only read the seeds back
    assert "claims: tiny_circle, seeds 1" in (out / "logs" / "seed1.log").read_text()
    result = runner.invoke(app, [*args, "--from-stage", "tiny_circle:student"])
    assert (
        result.exit_code == 2
        and "--from-stage tiny_circle:student: experiments.tiny_circle has no stage 'student'" in result.output
    )
    result = runner.invoke(app, [*args, "--fresh"])
    assert result.exit_code != 0 and isinstance(result.exception, AssertionError)


def test_features_stage_trains_its_own_classifier_on_the_one_training_path(tmp_path):
    """features.net other than teacher: a classifier trained by distill.fit (as teachers and
    students are), so keep_best holds here too: the saved net is the one of its best validation step."""
    raw = tiny_raw_params()
    raw["experiments"]["tiny"]["features"] = {
        "net": "cnn",
        "width": 4,
        "steps": 12,
        "batch_size": 16,
        "augment": False,
        "keep_best": True,
        "eval_every": 4,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    for stage in ("prepare", "features"):
        result = runner.invoke(app, [stage, "-e", "tiny", "-p", str(tmp_path / "params.yaml"), "--root", str(tmp_path)])
        assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics" / "tiny" / "features.json").read_text())
    ckpt = load_checkpoint(tmp_path / "models" / "tiny" / "features.pt")
    assert ckpt["kind"] == "classifier" and ckpt["arch"]["net"] == "cnn" and metrics["feature_dim"] == 32
    assert metrics["best_step"] in (4.0, 8.0, 12.0)
    ds = load_dataset(tmp_path / "data" / "tiny" / "prepared")
    model = load_classifier(tmp_path / "models" / "tiny" / "features.pt")
    assert metrics["val_accuracy"] == pytest.approx(float((model(ds.x_val).argmax(1) == ds.y_val).float().mean()))
