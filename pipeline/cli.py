"""The `cgankd` command line: one sub-command per DVC stage, plus `report`."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import CgankdError

app = typer.Typer(
    name="cgankd",
    help="Conditional GANs, density-ratio subsampling and cGAN-KD as a tracked pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ExperimentOpt = Annotated[
    str, typer.Option("--experiment", "-e", help="experiment name (a key of `experiments` in params.yaml)")
]
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file")]
RootOpt = Annotated[Path, typer.Option("--root", help="repository root that holds data/, models/ and metrics/")]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_stage(stage: str, params, experiment: str, paths) -> dict:
    """Run one stage module (pipeline/stages/<stage>.py) in this process, on params.runtime.device
    (as a rank of the process group when torchrun started this process)."""
    from pipeline import runtime

    runtime.start(params.runtime.device, params.runtime.amp)
    try:
        return importlib.import_module(f"pipeline.stages.{stage}").run(params, experiment, paths)
    finally:
        runtime.stop()


def _run_stage(stage: str, experiment: str, params_path: Path, root: Path, nproc: int | None) -> None:
    from pipeline.errors import ParamsError
    from pipeline.params import load_params

    try:
        params = load_params(params_path)
        if stage not in params.stages(experiment):  # unknown experiment or stage: fail before any work
            task = params.experiment(experiment).task
            raise ParamsError(
                f"experiments.{experiment}: a {task} experiment has no {stage} stage (its stages: "
                f"{', '.join(params.stages(experiment))})"
            )
        from pipeline.artifacts import Paths

        nproc = params.runtime.nproc if nproc is None else nproc
        if nproc > 1 and params.distributed(experiment, stage) and "WORLD_SIZE" not in os.environ:
            _torchrun(nproc, [stage, "-e", experiment, "-p", str(params_path), "--root", str(root)])
            return
        run_stage(stage, params, experiment, Paths(experiment, root))
    except CgankdError as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        fail(
            f"{stage}[{experiment}] interrupted; outputs written so far are complete files (GAN training resumes)", 130
        )


def _torchrun(nproc: int, args: list[str]) -> None:
    """Run `python -m pipeline ARGS` under torchrun with `nproc` processes on this machine."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    code = subprocess.call([*cmd, "-m", "pipeline", *args])
    if code:
        fail(f"{' '.join(args[:3])} failed under torchrun with {nproc} processes (exit code {code}; see above)", code)


NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="processes for a training stage: >1 launches it under torchrun (default: runtime.nproc in the params)",
    ),
]


def _stage_command(stage: str, doc: str) -> None:
    def command(
        experiment: ExperimentOpt,
        params: ParamsOpt = Path("params.yaml"),
        root: RootOpt = Path("."),
        nproc: NprocOpt = None,
    ) -> None:
        _run_stage(stage, experiment, params, root, nproc)

    command.__doc__ = doc
    app.command(name=stage)(command)


_stage_command("prepare", "Load the data set and write the (limited) training and test splits.")
_stage_command(
    "teacher", "Train the teacher (a classifier, or a regressor for continuous labels) on the real training data."
)
_stage_command("embed", "Train ILI's label embedding (regression net x -> h -> y, then y2h) for continuous labels.")
_stage_command("gan", "Train the conditional GAN, or every CcGAN variant (resumes from the last checkpoints).")
_stage_command(
    "features",
    "Train DRE's feature extractor on the real data (classifier, or sparse autoencoder for continuous labels).",
)
_stage_command("dre", "Train the density-ratio nets DRE-F-SP and cDRE-F-cSP on the GAN's fakes and the real data.")
_stage_command(
    "synthesize",
    "Generate fakes (optionally subsampled by density ratio), filter them with the teacher and relabel them.",
)
_stage_command("student", "Train the students (real only, BLKD, cGAN-KD, ...).")
_stage_command(
    "evalnets",
    "Train the evaluation nets of an image-regression experiment (label regressor, attribute classifier) on "
    "every real image.",
)
_stage_command("evaluate", "Measure GAN quality and collect the student table.")


@app.command()
def report(
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
    times: Annotated[
        bool, typer.Option("--times", help="instead: seconds per stage of the newest pipeline run (from MLflow)")
    ] = False,
) -> None:
    """Print the results table of every experiment that has been evaluated, then the claims table on them."""
    from pipeline.artifacts import Paths, read_json
    from pipeline.claims import table, verdicts_for
    from pipeline.params import load_params

    if times:
        _report_times()
        return

    try:
        p = load_params(params)
    except CgankdError as err:
        fail(str(err), err.exit_code)
    summaries = {}
    for name in p.experiments:
        paths = Paths(name, root)
        if paths.summary_md.exists():
            typer.echo(paths.summary_md.read_text())
            summaries[name] = [read_json(paths.summary_json)]
    if not summaries:
        fail("no evaluated experiment yet: run `dvc repro` (or `make demo`) first", 1)
    typer.echo(f"## Claims on this run (seed {p.seed} only: `make claims` judges them over seeds 0, 1, 2)\n")
    typer.echo(table(verdicts_for(p, summaries), [p.seed]))


def _report_times() -> None:
    from pipeline.report import times_table
    from pipeline.tracking import stage_times

    found = stage_times()
    if found is None:
        fail("no stage run tracked yet: run `dvc repro` (or `make demo`) first", 1)
        return
    run, rows = found
    typer.echo(f"## Seconds per stage, pipeline run {run} (inside each stage's MLflow run, process start not counted)")
    typer.echo("")
    typer.echo("\n".join(times_table(rows)))


@app.command()
def seeds(
    experiment: ExperimentOpt,
    seed: Annotated[list[int], typer.Option("--seed", "-s", help="a seed; repeat the option for several")] = [0, 1, 2],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", help="folder for the per-seed outputs and the summary")] = Path(
        "runs/seeds"
    ),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Run the whole pipeline of one experiment once per seed (outside DVC); print mean and std."""
    from pipeline.params import load_params
    from pipeline.repeat import run_seeds

    try:
        p = load_params(params)
        p.experiment(experiment)
        run_seeds(p, experiment, seed, out, run_stage)
    except CgankdError as err:
        fail(str(err), err.exit_code)
    typer.echo((out / f"{experiment}_seeds.md").read_text())


@app.command()
def claims(
    params: Annotated[Path, typer.Option("--params", "-p", help="params file: the claims profile")] = Path(
        "profiles/claims.yaml"
    ),
    seed: Annotated[list[int], typer.Option("--seed", "-s", help="a seed; repeat the option for several")] = [0, 1, 2],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", help="folder for the per-seed outputs and the claims table")] = Path(
        "runs/claims"
    ),
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="rerun every seed (default: a seed finished with the same params is read back)"),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="seeds run at once, each a process of its own on one thread (logs in OUT/logs/)")
    ] = 1,
    from_stage: Annotated[
        list[str],
        typer.Option(
            "--from-stage",
            help=(
                "EXPERIMENT:STAGE: rerun that experiment from STAGE on, reusing the earlier stages' "
                "outputs (when only STAGE's params or later ones changed); repeatable"
            ),
        ),
    ] = [],  # noqa: B006
) -> None:
    """Run every experiment of a params file once per seed (outside DVC) and print the claims table:
    each claim of the papers with its mean ± std, per-seed margins and PASS/MISS (also out/claims.md).

    Small nets use two cores better as two one-thread processes than as one two-thread process:
    with --workers 3 the three seeds run side by side, then the table is made from what they wrote."""
    import shutil

    from pipeline.params import load_params
    from pipeline.repeat import run_claims
    from pipeline.tracking import git_commit
    from pipeline.ui import info

    try:
        p = load_params(params)
        restart = _from_stages(p, from_stage)
        if fresh and out.exists():
            shutil.rmtree(out)
        if workers > 1 and len(seed) > 1:
            _claims_workers(params, list(p.experiments), seed, out, workers, from_stage)
            restart = {}  # the workers reran those stages: here every seed is read back
        text = run_claims(
            p, seed, out, run_stage, progress=info, source=f"{params} at commit {git_commit()[:10]}", from_stage=restart
        )
    except CgankdError as err:
        fail(str(err), err.exit_code)
    typer.echo(text)


def _from_stages(params, specs: list[str]) -> dict[str, str]:
    """--from-stage EXPERIMENT:STAGE options as {experiment: stage}, checked against the pipeline."""
    from pipeline.errors import ParamsError

    out = {}
    for spec in specs:
        name, _, stage = spec.partition(":")
        stages = params.stages(name)
        if stage not in stages:
            raise ParamsError(
                f"--from-stage {spec}: experiments.{name} has no stage {stage!r} (its stages: {', '.join(stages)})"
            )
        out[name] = stage
    return out


def _claims_workers(
    params: Path, experiments: list[str], seeds: list[int], out: Path, workers: int, from_stage: list[str]
) -> None:
    """Run `cgankd claims` for each seed in a process of its own, at most `workers` at once, each on
    one thread; a failed seed is an error that names its log. The MLflow store and experiments are
    made first: workers that each create them at once collide (SQLite migrations, duplicate names)."""
    import os
    import subprocess
    import time

    from pipeline.errors import CgankdError
    from pipeline.tracking import use_experiment
    from pipeline.ui import info

    for name in experiments:
        use_experiment(name)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending, running, failed = list(seeds), {}, []
    while pending or running:
        while pending and len(running) < workers:
            s = pending.pop(0)
            cmd = [sys.executable, "-m", "pipeline.cli", "claims", "-p", str(params), "-s", str(s), "--out", str(out)]
            cmd += [a for spec in from_stage for a in ("--from-stage", spec)]
            with open(logs / f"seed{s}.log", "w") as log:
                running[s] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            info(f"claims: seed {s} started (log: {logs / f'seed{s}.log'})")
        time.sleep(2)
        for s, proc in list(running.items()):
            if proc.poll() is None:
                continue
            del running[s]
            if proc.returncode:
                failed.append(s)
            else:
                info(f"claims: seed {s} done")
    if failed:
        raise CgankdError(f"claims: seed(s) {', '.join(map(str, failed))} failed; see {logs}/seed<N>.log")


@app.command()
def tune(
    study: Annotated[
        str,
        typer.Argument(
            help=(
                "vicinity (CcGAN's sigma and kappa/nu), dre-penalty (DRE's lambda) or n-fake (synthetic "
                "set size for students)"
            )
        ),
    ],
    experiment: ExperimentOpt,
    n_trials: Annotated[
        int,
        typer.Option(
            "--n-trials", min=1, help="finished trials the study should hold; a rerun runs only the missing ones"
        ),
    ] = 20,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="seconds after which (each worker) starts no new trial")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help=(
                "Optuna storage: a journal file path, or an RDB URL (postgresql://, mysql://) that workers "
                "on many machines share [default: runs/tune/<study-name>/journal.log]"
            )
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option("--study-name", help="[default: <experiment>-<study>]; an existing name resumes that study"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine, sharing the storage")] = 1,
    apply: Annotated[
        bool, typer.Option("--apply", help="write the best params into the params file (comments and order kept)")
    ] = False,
    variant: Annotated[
        str | None,
        typer.Option(
            help="vicinity: the CcGAN variant to tune [default: synthesize.gan_variant, or dre.gan_variant for circle]"
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="dre-penalty: dre or cdre [default: synthesize.subsampling, else cdre]")
    ] = None,
    rho: Annotated[bool, typer.Option("--rho", help="n-fake: tune the teacher filter's rho too")] = False,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Run (or resume) an Optuna study on validation data; every trial is an MLflow run nested under the study's run.

    A trial reuses what its params do not change (a trained teacher, GAN or feature extractor of
    `dvc repro`), so run the pipeline first. The summary, plots and default storage go to
    runs/tune/<study-name>/."""
    from pipeline.errors import ParamsError
    from pipeline.tune.runner import StudySpec, optimize, summary_text
    from pipeline.tune.studies import Options

    spec = StudySpec(
        study, experiment, params, root, study_name or f"{experiment}-{study}", storage, Options(variant, method, rho)
    )
    try:
        if not spec.study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ParamsError(f"--study-name {spec.study_name!r}: use letters, digits, '-', '_' and '.'")
        summary = optimize(spec, n_trials=n_trials, timeout=timeout, workers=workers, say=typer.echo)
    except CgankdError as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        fail(
            f"study {spec.study_name} interrupted: finished trials are kept, the running one is marked "
            "failed; rerun the same command to resume",
            130,
        )
    typer.echo(summary_text(summary))
    typer.echo(f"summary and plots: {spec.folder}")
    if apply:
        if "best_params" not in summary:
            fail("--apply: the study has no complete trial; params file left unchanged", 1)
        from pipeline.tune.apply import apply_values

        try:
            apply_values(params, experiment, summary["best_params"])
        except CgankdError as err:
            fail(str(err), err.exit_code)
        typer.echo(
            f"wrote {', '.join(f'experiments.{experiment}.{k}' for k in summary['best_params'])} into "
            f"{params}; `dvc repro` picks them up"
        )


@app.command()
def subsample(
    experiment: ExperimentOpt,
    generator: Annotated[
        Path,
        typer.Option("--generator", "-g", help="generator checkpoint (the gan stage's format: arch + state.G_ema)"),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="output stem: writes <out>.pt, <out>.json and, for images, <out>.png")
    ],
    method: Annotated[str, typer.Option("--method", "-m", help="dre (DRE-F-SP+RS) or cdre (cDRE-F-cSP+RS)")] = "cdre",
    n_per_label: Annotated[
        int, typer.Option("--n-per-label", "-n", min=1, help="accepted fakes per evaluation label")
    ] = 100,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Subsample a saved generator's fakes by density ratio, outside the pipeline (needs the
    experiment's prepare, features and, for continuous labels, embed outputs)."""
    from pipeline.artifacts import Paths
    from pipeline.errors import CheckpointError, ParamsError
    from pipeline.params import load_params
    from pipeline.stages import subsample as stage

    try:
        if method not in ("dre", "cdre"):
            raise ParamsError(f"--method {method!r}: use dre or cdre")
        if not generator.is_file():
            raise CheckpointError(f"{generator}: generator checkpoint not found")
        p = load_params(params)
        p.experiment(experiment)
        stage.run(
            p, experiment, Paths(experiment, root), generator=generator, method=method, n_per_label=n_per_label, out=out
        )
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command()
def generate(
    experiment: ExperimentOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="output stem: writes <out>.pt (x, y in label units) and <out>.png")
    ],
    label: Annotated[
        list[float] | None,
        typer.Option(
            "--label",
            "-l",
            help=(
                "a label in the data set's units (a class id; degrees for chairs, radians for the circle); "
                "repeat for several (default: every class, or 10 evenly spaced over the training range)"
            ),
        ),
    ] = None,
    n_per_label: Annotated[
        int, typer.Option("--n-per-label", "-n", min=1, help="fakes per label (one row of the picture)")
    ] = 8,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            "-v",
            help="the gan stage's generator of this variant (default: the class-conditional GAN, or dre.gan_variant)",
        ),
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option("--generator", "-g", help="a generator checkpoint of your own instead (the gan stage's format)"),
    ] = None,
    subsampling: Annotated[
        str,
        typer.Option(
            "--subsample",
            "-m",
            help=(
                "none, or dre / cdre: rejection sampling through the dre stage's ratio nets (trained on "
                "dre.gan_variant's fakes)"
            ),
        ),
    ] = "none",
    seed: Annotated[int | None, typer.Option(help="random seed (default: params.yaml's seed)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Generate fakes at the labels you name with a trained GAN (a class, or a continuous label such
    as an angle); writes the fakes and a picture."""
    from pipeline.artifacts import Paths
    from pipeline.params import load_params
    from pipeline.stages import generate as command

    try:
        p = load_params(params)
        p.experiment(experiment)
        command.run(
            p,
            experiment,
            Paths(experiment, root),
            out=out,
            labels=label,
            n_per_label=n_per_label,
            variant=variant,
            generator=generator,
            subsampling=subsampling,
            seed=seed,
        )
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command()
def translate(
    experiment: ExperimentOpt,
    inputs: Annotated[
        list[Path], typer.Option("--input", "-i", help="an image file or a folder of images; repeat for several")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder: <name>.png per input, translations.png")],
    direction: Annotated[str, typer.Option("--direction", "-d", help="AtoB (G) or BtoA (F)")] = "AtoB",
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Translate your images with a translation experiment's trained CycleGAN (domain A to B, or B to A)."""
    from pipeline.artifacts import Paths
    from pipeline.params import load_params
    from pipeline.stages.translation import translate_files

    try:
        translate_files(load_params(params), experiment, Paths(experiment, root), inputs, out, direction)
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command("bench-subsample")
def bench_subsample(
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="an experiment (repeat; default: all with a dre stage output)"),
    ] = None,
    n_fake: Annotated[int, typer.Option(help="fakes per run (the memory check repeats with 10x as many)")] = 2000,
    method: Annotated[str, typer.Option(help="dre or cdre")] = "cdre",
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Accepted fakes per second, acceptance rate and peak memory of rejection sampling, per experiment."""
    from pipeline.bench import bench_subsample as run_bench
    from pipeline.params import load_params

    try:
        p = load_params(params)
        names = experiment or [n for n in p.experiments if (root / "models" / n / "dre.pt").exists()]
        if not names:
            fail("no experiment has density-ratio nets yet: run `dvc repro` (or `make demo`) first", 1)
        for name in names:
            p.experiment(name)
        run_bench(params, root, names, n_fake, method, report=typer.echo)
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command("bench-dre")
def bench_dre(
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="an experiment (repeat; default: all with a dre stage)"),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="timed training steps of the ratio net, per setting")] = 200,
    method: Annotated[str, typer.Option(help="dre or cdre")] = "cdre",
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Ratio-net training steps per second with fresh fakes, new fakes for every batch against the
    experiment's dre params (fresh_block, fresh_reuse, max_redraws), and the share of a step spent
    generating, extracting features and updating. Needs the experiment's features and gan outputs."""
    from pipeline.artifacts import Paths
    from pipeline.bench import bench_dre as run_bench
    from pipeline.errors import ParamsError
    from pipeline.params import load_params

    try:
        if method not in ("dre", "cdre"):
            raise ParamsError(f"--method {method!r}: use dre or cdre")
        p = load_params(params)
        names = experiment or [n for n in p.experiments if getattr(p.experiment(n), "dre", None) is not None]
        typer.echo(f"bench-dre: torch {torch_version()}, on the CPU")
        for name in names:
            exp = p.experiment(name)
            if getattr(exp, "dre", None) is None:
                raise ParamsError(f"experiments.{name}: no dre section ({exp.task} has no ratio nets)")
            paths = Paths(name, root)
            missing = [f for f in (paths.features, paths.generator(exp.dre_variant)) if not f.exists()]
            if missing:
                fail(f"bench-dre[{name}]: {missing[0]} not found: run `dvc repro dre@{name}` (or `make demo`) first", 1)
            typer.echo(f"## {name} ({exp.task}, {method}, gan variant {exp.dre_variant})")
            run_bench(exp, paths, steps, method, p.seed, report=typer.echo)
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command("bench-student")
def bench_student(
    params: Annotated[Path, typer.Option("--params", "-p", help="params file or profile (e.g. profiles/claims.yaml)")],
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="an experiment (repeat; default: all whose students distil)"),
    ] = None,
    n_real: Annotated[int, typer.Option(min=1, help="real training images")] = 1000,
    n_fake: Annotated[int, typer.Option(min=0, help="fakes (the synthetic set)")] = 7000,
    steps: Annotated[int, typer.Option(min=1, help="timed steps per student")] = 300,
) -> None:
    """Seconds per student of each KD method of a profile, with the teacher's outputs computed once
    (what an un-augmented student does) and with the teacher run on every batch, on stand-in data
    of the profile's shape."""
    from pipeline.bench import bench_student as run_bench
    from pipeline.params import load_params

    try:
        p = load_params(params)
        names = experiment or [n for n in p.experiments if _distils(p.experiment(n))]
        if not names:
            fail("no experiment of this profile has student.methods to time", 1)
        typer.echo(f"bench-student: torch {torch_version()}, on the CPU")
        for name in names:
            exp = p.experiment(name)
            if not _distils(exp):
                fail(f"experiments.{name}: no student.methods to time", 2)
            typer.echo(f"## {name} ({exp.task})")
            run_bench(exp, n_real, n_fake, steps, p.seed, report=typer.echo)
    except CgankdError as err:
        fail(str(err), err.exit_code)


@app.command("bench-gan")
def bench_gan(
    params: Annotated[Path, typer.Option("--params", "-p", help="params file or profile (e.g. profiles/cifar10.yaml)")],
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="an experiment (repeat; default: all)")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="timed iterations (default: 20 on a GPU, 5 on the CPU)")
    ] = None,
    warmup: Annotated[int | None, typer.Option(min=0, help="untimed first iterations (default: 5 GPU, 2 CPU)")] = None,
    nproc: NprocOpt = None,
) -> None:
    """Iterations and generated samples per second and peak memory of each GAN of a profile on this
    machine's device (runtime.device), warm-up apart, on random data of the profile's shape: the
    throughput before committing a day to a run. With --nproc N, under torchrun (global batch)."""
    from pipeline import runtime
    from pipeline.bench import bench_gan as run_bench
    from pipeline.params import load_params

    try:
        p = load_params(params)
        names = experiment or list(p.experiments)
        for name in names:
            p.experiment(name)
        nproc = p.runtime.nproc if nproc is None else nproc
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            args = ["bench-gan", "-p", str(params), *(a for n in names for a in ("-e", n))]
            args += [*(["--iterations", str(iterations)] if iterations else [])]
            args += [*(["--warmup", str(warmup)] if warmup is not None else [])]
            _torchrun(nproc, args)
            return
        rt = runtime.start(p.runtime.device, p.runtime.amp)
        try:
            if rt.main:
                typer.echo(f"bench-gan: torch {torch_version()}, device {rt.device}, {rt.world} process(es)")
            for name in names:
                report = typer.echo if rt.main else (lambda _: None)
                report(f"## {name} ({p.experiment(name).task})")
                run_bench(p.experiment(name), rt, iterations, warmup, p.seed, report)
        finally:
            runtime.stop()
    except CgankdError as err:
        fail(str(err), err.exit_code)


def _distils(exp) -> bool:
    """Whether an experiment's students use KD methods."""
    return bool(getattr(getattr(exp, "student", None), "methods", None))


def torch_version() -> str:
    import torch

    return f"{torch.__version__} ({torch.get_num_threads()} threads)"


@app.command("bench-circle")
def bench_circle(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="a circle experiment")] = "circle",
    steps: Annotated[int | None, typer.Option(min=11, help="iterations (default: the experiment's gan.steps)")] = None,
    compiled: Annotated[
        bool | None,
        typer.Option("--compile/--eager", help="compiled or eager steps (default: the experiment's gan.compile)"),
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Time the circle GANs' training (iterations per second) at the experiment's settings."""
    import torch

    from pipeline.bench import bench_circle as run_bench
    from pipeline.errors import ParamsError
    from pipeline.params import load_params

    try:
        exp = load_params(params).experiment(experiment)
        if exp.task != "circle":
            raise ParamsError(f"experiments.{experiment}: bench-circle needs a circle experiment, not {exp.task}")
    except CgankdError as err:
        fail(str(err), err.exit_code)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # put the thread count back: in process (the tests), later work must not run on the benchmark's
        typer.echo(f"bench-circle[{experiment}]: torch {torch.__version__}, {threads} thread(s)")
        run_bench(exp, seed=seed, steps=steps, compiled=compiled, report=typer.echo)
    finally:
        torch.set_num_threads(before)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # `python -m pipeline.cli`: the claims workers
    main()
