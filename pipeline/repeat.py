"""Run one experiment's whole pipeline once per seed (outside DVC) and aggregate mean and std."""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from pathlib import Path

from pipeline import tracking
from pipeline.artifacts import Paths, write_json, write_text
from pipeline.params import Params

RunStage = Callable[[str, Params, str, Paths], object]  # (stage, params, experiment, paths): the CLI's stage runner

SKIP = {"n_train", "steps", "best_step", "n_labels", "n_kept"}  # counts, not results


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _leaves(d: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested summary as {"gan.hvdl.w2": value, ...}."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _leaves(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIP:
            out[f"{prefix}{k}"] = float(v)
    return out


def aggregate(summaries: list[dict]) -> dict:
    """Mean and (sample) std over seeds of every numeric result in the evaluate stage's summaries
    (GAN metrics, teacher, students), keyed by its dotted path."""
    leaves = [_leaves(s) for s in summaries]
    return {"n_seeds": len(summaries), "metrics": {k: _mean_std([leaf[k] for leaf in leaves]) for k in leaves[0]}}


def markdown(experiment: str, seeds: list[int], agg: dict) -> str:
    return "\n".join(
        [
            f"## {experiment}: mean ± std over seeds {', '.join(map(str, seeds))}",
            "",
            "| metric | mean ± std |",
            "|---|---|",
            *[f"| {k} | {d['mean']:.4g} ± {d['std']:.2g} |" for k, d in agg["metrics"].items()],
            "",
        ]
    )


def _stamp(params: Params, experiment: str, seed: int) -> dict:
    """What a finished seed's summary was made from: the experiment's params and the seed."""
    return {"seed": seed, "experiment": params.experiment(experiment).model_dump(mode="json")}


def run_seeds(
    params: Params,
    experiment: str,
    seeds: list[int],
    out: Path,
    run_stage: RunStage,
    resume: bool = False,
    from_stage: str | None = None,
) -> tuple[dict, list[dict]]:
    """(mean and std over seeds, each seed's summary): each stage of the experiment run by
    run_stage into out/seed<N>/. Each seed's stages share one MLflow
    pipeline_run_id, as the stages of one `dvc repro` do. With `resume`, a seed whose summary was
    made from the same params (its stamp) is read back instead of rerun. With `from_stage`, the
    stages before it are not rerun but their outputs of an earlier run are used: for when only
    that stage's params or later ones changed (DVC tracks this inside a repository; here the
    caller vouches for it)."""
    summaries = []
    study = uuid.uuid4().hex[:8]
    for seed in seeds:
        p = params.model_copy(update={"seed": seed})
        paths = Paths(experiment, out / f"seed{seed}")
        stamp_path = paths.metrics / "params_stamp.json"
        stamp = _stamp(params, experiment, seed)
        done = (
            resume
            and paths.summary_json.exists()
            and stamp_path.exists()
            and json.loads(stamp_path.read_text()) == stamp
        )
        stages = p.stages(experiment)
        if from_stage is not None:
            stages, done = stages[stages.index(from_stage) :], False
        if not done:
            stamp_path.unlink(missing_ok=True)
            with tracking.pipeline_run(f"seeds-{study}-seed{seed}"):
                for stage in stages:
                    run_stage(stage, p, experiment, paths)
            write_json(stamp_path, stamp)
        summaries.append(json.loads(paths.summary_json.read_text()))
    agg = aggregate(summaries)
    write_json(out / f"{experiment}_seeds.json", {"seeds": seeds, **agg})
    write_text(out / f"{experiment}_seeds.md", markdown(experiment, seeds, agg))
    return agg, summaries


def run_claims(
    params: Params,
    seeds: list[int],
    out: Path,
    run_stage: RunStage,
    progress=None,
    source: str = "",
    from_stage: dict[str, str] | None = None,
) -> str:
    """Every experiment of `params` once per seed (resuming finished seeds; `from_stage`:
    experiment -> the stage to rerun it from, as in run_seeds), then the claims table
    (out/claims.md, out/claims.json). `progress(text)` hears when each experiment starts."""
    from pipeline.claims import diagnostics, table, verdicts_for

    summaries = {}
    for name in params.experiments:
        if progress:
            progress(f"claims: {name}, seeds {', '.join(map(str, seeds))}")
        summaries[name] = run_seeds(
            params, name, seeds, out, run_stage, resume=True, from_stage=(from_stage or {}).get(name)
        )[1]
    verdicts = verdicts_for(params, summaries)
    text = (f"Claims over seeds {', '.join(map(str, seeds))} ({source}):\n\n" if source else "") + table(
        verdicts, seeds
    )
    text += "\n\n" + diagnostics(params, summaries)
    write_json(
        out / "claims.json",
        [
            {
                "experiment": v.experiment,
                "claim": v.claim.text,
                "left": v.left,
                "right": v.right,
                "margins": v.margins,
                "result": v.result,
            }
            for v in verdicts
        ],
    )
    write_text(out / "claims.md", text + "\n")
    return text
