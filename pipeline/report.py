"""Report tables: the GAN table of the evaluate stage's markdown, the equal-label table, and the
headline that `dvc metrics show` prints (pure functions of a summary)."""

from __future__ import annotations

HEADLINE = {  # task -> (what the teacher and students are scored by, the GAN metric and its summary key)
    "classification": ("test accuracy", "FID (evaluation classifier)", "fid_evalnet"),
    "regression": ("test MAE", "intra-FID (eval regressor)", "intra_fid_eval_regressor_features"),
    "circle": (None, "W2", "w2"),
}


def headline(task: str, summary: dict, dre_variant: str) -> dict:
    """The experiment's summary cut to the same few keys in every experiment, so that `dvc metrics
    show` prints one readable row each: the teacher's and two students' test scores with cGAN-KD's
    gain over real only (positive: better), and the GAN metric of the subsampled variant without
    and with cDRE-F-cSP+RS (on the labels both filled) with its acceptance rate. Keys an experiment
    has no value for are left out (dvc shows "-")."""
    score, gan_metric, key = HEADLINE[task]
    row: dict = {"task": task, "gan_metric": gan_metric}
    equal = summary.get("gan_equal_labels") or summary["gan"]
    for name, variant in (("gan", dre_variant), ("gan_cdre", f"{dre_variant}+cdre")):
        if key in equal.get(variant, {}):
            row[name] = equal[variant][key]
    if "acceptance_rate" in summary["gan"].get(f"{dre_variant}+cdre", {}):
        row["cdre_acceptance"] = summary["gan"][f"{dre_variant}+cdre"]["acceptance_rate"]
    if score is None:
        return row
    metric = "test_accuracy" if task == "classification" else "test_mae"
    students = summary["students"]
    row.update(score=score, teacher=summary["teacher"][metric])
    row.update({v: students[v][metric] for v in ("real_only", "cgan_kd") if v in students})
    if "real_only" in row and "cgan_kd" in row:
        row["cgan_kd_gain"] = (row["cgan_kd"] - row["real_only"]) * (1 if task == "classification" else -1)
    return row


def gan_table(gan: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows: one per GAN variant (and subsampling method), one column per metric."""
    keys = list(dict.fromkeys(k for m in gan.values() for k in m))
    lines = ["| GAN | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    return lines + [
        f"| {v} | " + " | ".join(f"{m[k]:.4g}" if k in m else "-" for k in keys) + " |" for v, m in gan.items()
    ]


def equal_labels_text(gan: dict[str, dict[str, float]], equal: dict[str, dict[str, float]]) -> list[str]:
    """Markdown: the subsampled variant's rows on the labels every row filled, when some row left
    labels short (otherwise the main table already compares them on equal terms)."""
    if not any(gan.get(v, {}).get("labels_short") for v in equal):
        return []
    n = next(iter(equal.values()))["n_labels"]
    if not n:
        return ["No label was filled by every subsampled row: no equal-label comparison.", ""]
    return [
        f"The same rows on the {n} labels that every one of them filled (rejection sampling left the others short):",
        "",
        *gan_table({v: {k: x for k, x in r.items() if k != "n_labels"} for v, r in equal.items()}),
        "",
    ]


DATA_TITLES = {  # a student's data (student.variants), in table order
    "real_only": "real only",
    "cgan_kd": "cGAN-KD",
    "cgan_kd_adjusted": "cGAN-KD (label adjustment)",
    "oracle": "oracle: perfect fakes, true labels",
}
METHOD_TITLES = {"blkd": "BLKD", "fitnet": "FitNet", "at": "AT", "rkd": "RKD", "crd": "CRD", "takd": "TAKD"}


def _data_and_method(name: str) -> tuple[str, str | None]:
    """A student's name split back into its data and KD method (distill.fit.students names them)."""
    for data in sorted(DATA_TITLES, key=len, reverse=True):  # cgan_kd_adjusted before cgan_kd
        if name == data:
            return data, None
        if name.startswith(f"{data}_"):
            return data, name[len(data) + 1 :]
    return "real_only", name


FINE_TUNED = "_ft"  # the suffix of students fine-tuned from the real-data one (student.init: real_only)


def student_title(name: str) -> str:
    """'cGAN-KD + FitNet' for cgan_kd_fitnet, 'FitNet' for fitnet (real data), 'cGAN-KD, fine-tuned
    from real only' for cgan_kd_ft, ..."""
    if name == "assistant":
        return "teacher assistant (TAKD)"
    if name.endswith(FINE_TUNED):
        base = _data_and_method(name.removesuffix(FINE_TUNED))[1]
        base_title = "real only" if base is None else METHOD_TITLES.get(base, base)
        return f"{student_title(name.removesuffix(FINE_TUNED))}, fine-tuned from {base_title}"
    data, method = _data_and_method(name)
    if method is None:
        return DATA_TITLES[data]
    title = METHOD_TITLES.get(method, method)
    return title if data == "real_only" else f"{DATA_TITLES[data]} + {title}"


def student_order(name: str) -> tuple[int, int, int]:
    """Table order: the assistant, then by data, each plain first and then with its methods, the
    fine-tuned ones after the ones trained from scratch."""
    if name == "assistant":
        return -1, -1, -1
    tuned = name.endswith(FINE_TUNED)
    data, method = _data_and_method(name.removesuffix(FINE_TUNED))
    methods = list(METHOD_TITLES)
    rank = -1 if method is None else methods.index(method) if method in methods else 99
    return list(DATA_TITLES).index(data), int(tuned), rank


def student_table(students: dict[str, dict], metric: str, number: str) -> list[str]:
    """Markdown rows of the students (metric "accuracy" or "mae"; `number` formats it, e.g. ".4f"):
    grouped by data, each with its KD methods after it."""
    rows = [
        f"| {student_title(v)} | {r['n_train']} | {r.get(f'val_{metric}', float('nan')):{number}} | "
        f"{r[f'test_{metric}']:{number}} |"
        for v, r in sorted(students.items(), key=lambda item: student_order(item[0]))
    ]
    label = "accuracy" if metric == "accuracy" else "MAE"
    return [f"| student | training images | validation {label} | test {label} |", "|---|---|---|---|", *rows]


def times_table(times: list[tuple[str, str, float]]) -> list[str]:
    """Markdown: seconds per stage (rows) and experiment (columns), with each stage's and each
    experiment's total, and every stage run's share of the whole."""
    experiments = list(dict.fromkeys(e for e, _, _ in times))
    stages = list(dict.fromkeys(s for _, s, _ in times))
    cell = {(e, s): t for e, s, t in times}
    total = sum(t for _, _, t in times)
    rows = ["| stage | " + " | ".join(experiments) + " | total | share |", "|---" * (len(experiments) + 3) + "|"]
    for s in stages:
        row = [f"{cell[e, s]:.0f}" if (e, s) in cell else "-" for e in experiments]
        t = sum(cell.get((e, s), 0.0) for e in experiments)
        rows.append(f"| {s} | " + " | ".join(row) + f" | {t:.0f} | {t / total:.0%} |")
    per = [sum(cell.get((e, s), 0.0) for s in stages) for e in experiments]
    rows.append("| total | " + " | ".join(f"{t:.0f}" for t in per) + f" | {total:.0f} | 100% |")
    return rows
