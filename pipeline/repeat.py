"""Run one experiment's whole pipeline once per seed (outside DVC) and aggregate mean and std."""

from __future__ import annotations

import importlib
import json
import os
import statistics
import uuid
from pathlib import Path

from pipeline.params import Params
from pipeline.stages.common import Paths, write_json, write_text
from pipeline.stages.evaluate import STUDENT_NAMES

STAGES = ("prepare", "teacher", "gan", "synthesize", "student", "evaluate")


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def aggregate(summaries: list[dict]) -> dict:
    """Mean and (sample) std over seeds of every GAN metric and every student's test accuracy."""
    return {
        "n_seeds": len(summaries),
        "teacher_test_accuracy": _mean_std([s["teacher"]["test_accuracy"] for s in summaries]),
        "gan": {k: _mean_std([s["gan"][k] for s in summaries]) for k in summaries[0]["gan"]},
        "students": {v: _mean_std([s["students"][v]["test_accuracy"] for s in summaries]) for v in summaries[0]["students"]},
    }


def markdown(experiment: str, seeds: list[int], agg: dict) -> str:
    fmt = lambda d: f"{d['mean']:.4f} ± {d['std']:.4f}"  # noqa: E731
    return "\n".join(
        [
            f"## {experiment}: mean ± std over seeds {', '.join(map(str, seeds))}",
            "",
            f"Teacher test accuracy: {fmt(agg['teacher_test_accuracy'])}",
            "",
            "| student | test accuracy |",
            "|---|---|",
            *[f"| {STUDENT_NAMES.get(v, v)} | {fmt(d)} |" for v, d in agg["students"].items()],
            "",
            "| GAN metric (teacher features) | value |",
            "|---|---|",
            *[f"| {k} | {fmt(d)} |" for k, d in agg["gan"].items()],
            "",
        ]
    )


def run_seeds(params: Params, experiment: str, seeds: list[int], out: Path) -> dict:
    """Each seed's stages share one MLflow pipeline_run_id, as the stages of one `dvc repro` do."""
    summaries = []
    study = uuid.uuid4().hex[:8]
    for seed in seeds:
        os.environ["CGANKD_PIPELINE_RUN_ID"] = f"seeds-{study}-seed{seed}"
        p = params.model_copy(update={"seed": seed})
        paths = Paths(experiment, out / f"seed{seed}")
        for stage in STAGES:
            importlib.import_module(f"pipeline.stages.{stage}").run(p, experiment, paths)
        summaries.append(json.loads(paths.summary_json.read_text()))
    agg = aggregate(summaries)
    write_json(out / f"{experiment}_seeds.json", {"seeds": seeds, **agg})
    write_text(out / f"{experiment}_seeds.md", markdown(experiment, seeds, agg))
    return agg
