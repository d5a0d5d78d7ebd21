"""The claims of the source papers as checks on per-seed summaries (metrics/<exp>.json), and the
table that says for each whether it held: PASS or MISS, with every seed's numbers.

A claim compares two numbers of an experiment's summary, read by dotted path, e.g. cGAN-KD's test
accuracy against the real-only student's. Per seed its margin is how far the claim holds (> 0:
it holds; for `at_least` claims >= 0 suffices). A claim passes when the mean margin over the seeds
does, or, for `every_seed` claims, when every seed's does. A pass whose mean margin is smaller
than the margins' standard deviation is flagged: the gain is inside the seed spread.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from pipeline.report import FINE_TUNED, METHOD_TITLES, student_order, student_title


@dataclass(frozen=True)
class Claim:
    """`left` OP `right` x factor + offset, OP one of "<", "<=", ">", ">=" (paths into a summary)."""

    text: str
    left: str
    op: str
    right: str
    factor: float = 1.0
    offset: float = 0.0
    every_seed: bool = False
    within_spread: bool = False  # holds unless it misses by more than the margins' std over seeds

    def margin(self, summary: dict) -> float:
        """How far the claim holds on one seed's summary (> 0 holds; NaN if a value is missing)."""
        left, right = value(summary, self.left), value(summary, self.right) * self.factor + self.offset
        return left - right if self.op in (">", ">=") else right - left

    def holds(self, margin: float) -> bool:
        return margin >= 0 if self.op in (">=", "<=") else margin > 0


def value(summary: dict, path: str) -> float:
    """The number at a dotted path of a summary (NaN when it is not there)."""
    node = summary
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return math.nan
        node = node[key]
    return float(node) if isinstance(node, (int, float)) else math.nan


def claims_for(task: str, summary: dict, dre_variant: str | None) -> list[Claim]:
    """The claims an experiment of `task` is judged by (its GAN variants read from a summary)."""
    if task == "ganzoo":
        return zoo_claims(summary)
    if task == "translation":
        return translation_claims(summary)
    assert dre_variant is not None, f"a {task} experiment subsamples one GAN variant"
    if task == "classification":
        acc = "students.{}.test_accuracy"
        return [
            Claim(
                "teacher at least 3 points above the real-only student (test accuracy)",
                "teacher.test_accuracy",
                ">=",
                acc.format("real_only"),
                offset=0.03,
            ),
            Claim("BLKD below the teacher (room left for the fakes)", "teacher.test_accuracy", ">", acc.format("blkd")),
            Claim("cGAN-KD > real only (test accuracy)", acc.format("cgan_kd"), ">", acc.format("real_only")),
            *[
                Claim(f"{student_title(n)} > real only (test accuracy)", acc.format(n), ">", acc.format("real_only"))
                for n in _fine_tuned(summary, "cgan_kd")
            ],
            *[
                Claim(f"cGAN-KD + {t} >= {t} (test accuracy)", acc.format(f"cgan_kd_{m}"), ">=", acc.format(m))
                for m, t in _methods(summary)
            ],
            _subsampling_claim(dre_variant, "intra_fid_evalnet"),
        ]
    gan = summary.get("gan", {})
    ccgan = [v for v in gan if "+" not in v and v != "binned"]
    if task == "regression":
        mae = "students.{}.test_mae"
        return [
            Claim(
                "cGAN-KD (label adjustment) test MAE < real only",
                mae.format("cgan_kd_adjusted"),
                "<",
                mae.format("real_only"),
            ),
            Claim("cGAN-KD test MAE < real only", mae.format("cgan_kd"), "<", mae.format("real_only")),
            *[
                Claim(f"{student_title(n)} test MAE < real only", mae.format(n), "<", mae.format("real_only"))
                for n in _fine_tuned(summary, "cgan_kd_adjusted", "cgan_kd")
            ],
            *[
                Claim(f"cGAN-KD + {t} test MAE <= {t}", mae.format(f"cgan_kd_{m}"), "<=", mae.format(m))
                for m, t in _methods(summary)
            ],
            *[
                Claim(
                    f"CcGAN {v}: Label Score below the binned cGAN's, every seed",
                    f"gan.{v}.label_score",
                    "<",
                    "gan.binned.label_score",
                    every_seed=True,
                )
                for v in ccgan
            ],
            _subsampling_claim(dre_variant, "label_score"),
        ]
    return [
        *[
            c
            for v in ccgan
            for c in (
                Claim(
                    f"CcGAN {v}: recovers at least the binned cGAN's modes, every seed",
                    f"gan.{v}.pct_recovered_modes",
                    ">=",
                    "gan.binned.pct_recovered_modes",
                    every_seed=True,
                ),
                Claim(
                    f"CcGAN {v}: 2-Wasserstein at most half the binned cGAN's, every seed",
                    f"gan.{v}.w2",
                    "<=",
                    "gan.binned.w2",
                    factor=0.5,
                    every_seed=True,
                ),
            )
        ],
        _subsampling_claim(dre_variant, "w2"),
    ]


def translation_claims(summary: dict) -> list[Claim]:
    """CycleGAN: G(x) reads as domain B (FID in the evaluation net's features below the identity
    mapping's, most translations taken for B); where the data know a label (the chairs' yaw), the
    translation keeps it: the label read from G(x) within evaluate.pose_target of x's, and at most half
    the identity mapping's error."""
    rows = summary.get("translation", {})
    fid_key = next((k for k in rows.get("AtoB", {}) if k.startswith("fid_")), "fid")
    claims = [
        Claim(
            "CycleGAN A->B: FID to domain B below the identity mapping's",
            f"translation.AtoB.{fid_key}",
            "<",
            f"translation.identity AtoB.{fid_key}",
        ),
        Claim(
            "CycleGAN A->B: most translations read as domain B",
            "translation.AtoB.reads_as_target",
            ">",
            "thresholds.reads_as_target",
        ),
        Claim(
            "CycleGAN B->A: most translations read as domain A",
            "translation.BtoA.reads_as_target",
            ">",
            "thresholds.reads_as_target",
        ),
    ]
    if "label_error" in rows.get("AtoB", {}):
        claims += [
            Claim(
                f"CycleGAN A->B keeps the label: error below {summary['thresholds']['label_error']:g}",
                "translation.AtoB.label_error",
                "<",
                "thresholds.label_error",
            ),
            Claim(
                "CycleGAN A->B: label error at most half the identity mapping's",
                "translation.AtoB.label_error",
                "<=",
                "translation.identity AtoB.label_error",
                factor=0.5,
            ),
        ]
    return claims


def zoo_claims(summary: dict) -> list[Claim]:
    """ganzoo: no kind collapses (IS at least half the test images'), the documents' IS order
    2N-GAN > cDCGAN > ACGAN (reported as it comes out), and S3GAN at 20% labels within the seed
    spread of the fully labelled projection GAN and better than one trained on the same labelled
    images alone (also at 10%), on intra-FID. Data-limited GANs (projection kind, data_fraction < 1):
    KD-DLGAN (both terms) below the plain GAN on FID, and DiffAugment + KD-DLGAN below DiffAugment
    alone, at each data share. Variants are found by what they are (evaluate_zoo.variant_info)."""
    variants = summary.get("variants", {})

    def find(kind: str, fraction: float = 1.0, data: float = 1.0, diffaug: bool = False, kd: str = "") -> str | None:
        want = {"kind": kind, "label_fraction": fraction, "data_fraction": data, "diffaug": diffaug, "kd_dlgan": kd}
        defaults = {"data_fraction": 1.0, "diffaug": False, "kd_dlgan": ""}  # summaries made before these keys
        return next((v for v, s in variants.items() if {**defaults, **s} == want), None)

    is_ = "gan.{}.is_teacher_classifier"
    out = [
        Claim(
            f"{v}: no collapse (IS at least half the test images'), every seed",
            is_.format(v),
            ">=",
            "reference.is_teacher_classifier_real_test",
            factor=0.5,
            every_seed=True,
        )
        for v in variants
    ]
    order = [find("2ngan"), find("cdcgan"), find("acgan")]
    names = ["2N-GAN", "cDCGAN", "ACGAN"]
    out += [
        Claim(
            f"document's order: {names[i]} IS > {names[i + 1]} IS", is_.format(order[i]), ">", is_.format(order[i + 1])
        )
        for i in range(2)
        if order[i] and order[i + 1]
    ]
    intra = "gan.{}.intra_fid_teacher_features"
    full = find("projection")
    for fraction in (0.2, 0.1):
        s3, alone = find("s3gan", fraction), find("projection", fraction)
        if s3 and full and fraction == 0.2:
            out.append(
                Claim(
                    f"S3GAN {fraction:.0%} labels: intra-FID within the seed spread of the projection GAN (100%)",
                    intra.format(s3),
                    "<=",
                    intra.format(full),
                    within_spread=True,
                )
            )
        if s3 and alone:
            out.append(
                Claim(
                    f"S3GAN {fraction:.0%} labels: intra-FID below the projection GAN on those labelled images alone",
                    intra.format(s3),
                    "<",
                    intra.format(alone),
                )
            )
    fid = "gan.{}.fid_teacher_features"
    for data in sorted({s.get("data_fraction", 1.0) for s in variants.values()} - {1.0}):
        plain, diffaug = find("projection", data=data), find("projection", data=data, diffaug=True)
        kd, both = (
            find("projection", data=data, kd="agkd+cgkd"),
            find("projection", data=data, diffaug=True, kd="agkd+cgkd"),
        )
        if plain and kd:
            out.append(
                Claim(f"KD-DLGAN {data:.0%} data: FID below the plain GAN's", fid.format(kd), "<", fid.format(plain))
            )
        if diffaug and both:
            out.append(
                Claim(
                    f"DiffAugment + KD-DLGAN {data:.0%} data: FID below DiffAugment alone",
                    fid.format(both),
                    "<",
                    fid.format(diffaug),
                )
            )
    return out


def _fine_tuned(summary: dict, *data: str) -> list[str]:
    """The students of `data` fine-tuned from the real-only one (student.init: real_only) that a summary has."""
    return [d + FINE_TUNED for d in data if d + FINE_TUNED in summary.get("students", {})]


def _methods(summary: dict) -> list[tuple[str, str]]:
    """(name, title) of each KD method the summary has students for, on real data and with cGAN-KD."""
    students = summary.get("students", {})
    return [(m, t) for m, t in METHOD_TITLES.items() if m in students and f"cgan_kd_{m}" in students]


def _subsampling_claim(variant: str, metric: str) -> Claim:
    """cDRE-F-cSP+RS against no subsampling on the experiment's main quality metric (lower is
    better), both measured on the labels every row filled."""
    return Claim(
        f"cDRE-F-cSP+RS better than no subsampling ({metric}, equal labels)",
        f"gan_equal_labels.{variant}+cdre.{metric}",
        "<",
        f"gan_equal_labels.{variant}.{metric}",
    )


@dataclass(frozen=True)
class Verdict:
    experiment: str
    claim: Claim
    left: list[float]
    right: list[float]
    margins: list[float]

    @property
    def passed(self) -> bool:
        if any(math.isnan(m) for m in self.margins):
            return False
        if self.claim.every_seed:
            return all(self.claim.holds(m) for m in self.margins)
        mean = statistics.fmean(self.margins)
        if self.claim.within_spread and len(self.margins) > 1:
            return self.claim.holds(mean) or -mean <= statistics.stdev(self.margins)
        return self.claim.holds(mean)

    @property
    def inside_spread(self) -> bool:
        """A pass by a mean margin smaller than the margins' std over seeds."""
        return len(self.margins) > 1 and abs(statistics.fmean(self.margins)) < statistics.stdev(self.margins)

    @property
    def result(self) -> str:
        if any(math.isnan(m) for m in self.margins):
            return "MISS (not measured)"
        if not self.passed:
            return "MISS"
        if self.claim.within_spread and not self.claim.holds(statistics.fmean(self.margins)):
            return "PASS (worse, but within the seed spread)"
        return "PASS (inside the seed spread)" if self.inside_spread and not self.claim.every_seed else "PASS"


def judge(experiment: str, claims: list[Claim], summaries: list[dict]) -> list[Verdict]:
    """Each claim over the seeds' summaries of one experiment."""
    out = []
    for c in claims:
        right = [value(s, c.right) * c.factor + c.offset for s in summaries]
        out.append(
            Verdict(experiment, c, [value(s, c.left) for s in summaries], right, [c.margin(s) for s in summaries])
        )
    return out


def _mean_std(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.4g}"
    return f"{statistics.fmean(xs):.4g} ± {statistics.stdev(xs):.2g}"


def _short(path: str) -> str:
    """A summary path without its section (students., gan., gan_equal_labels.)."""
    for prefix in ("students.", "gan_equal_labels.", "gan."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _bound(c: Claim) -> str:
    """The right-hand side as the claim states it."""
    side = _short(c.right)
    scaled = f"{c.factor:g} x {side}" if c.factor != 1 else side
    return f"{scaled} + {c.offset:g}" if c.offset else scaled


def table(verdicts: list[Verdict], seeds: list[int]) -> str:
    """Markdown: one line per claim with both sides (mean ± std), the margin per seed and PASS/MISS."""
    lines = [
        "| experiment | claim | left: mean ± std | right: mean ± std | margin per seed "
        f"({', '.join(map(str, seeds))}) | result |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        c = v.claim
        lines.append(
            f"| {v.experiment} | {c.text} | {_short(c.left)}: {_mean_std(v.left)} | {c.op} {_bound(c)}: "
            f"{_mean_std(v.right)} "
            f"| {', '.join(f'{m:+.3g}' for m in v.margins)} | {v.result} |"
        )
    n_pass = sum(v.passed for v in verdicts)
    return "\n".join(
        [
            *lines,
            "",
            f"{n_pass} of {len(verdicts)} claims hold. Margin: how far the claim holds on that seed (> 0: it holds).",
        ]
    )


def verdicts_for(params, summaries: dict[str, list[dict]]) -> list[Verdict]:
    """Every claim of every experiment that has summaries (experiment name -> one per seed)."""
    out = []
    for name, runs in summaries.items():
        exp = params.experiment(name)
        out += judge(name, claims_for(exp.task, runs[0], getattr(exp, "dre_variant", None)), runs)
    return out


# what a reader needs next to the claims to see why a KD claim holds or not: (label, summary path)
DIAGNOSTICS = {  # besides every student's test score (and, for regression, its validation MAE)
    "classification": [
        ("teacher test accuracy", "teacher.test_accuracy"),
        *[(f"{v} best validation step", f"students.{v}.best_step") for v in ("real_only", "cgan_kd")],
    ],
    "regression": [
        ("teacher test MAE (real images)", "teacher.test_mae"),
        ("evaluation regressor's error on real test images", "reference.label_score"),
        ("label noise of the kept fakes: condition labels", "synthetic.label_noise_cond"),
        ("label noise of the kept fakes: teacher-adjusted labels", "synthetic.label_noise_adjusted"),
        ("kept fakes", "synthetic.n_kept"),
    ],
    "translation": [
        ("domain-B regressor's error on real B test images", "reference.label_error_real_b_test"),
        ("label error of a constant guess (B's median label)", "reference.label_error_constant_guess"),
        ("cycle L1 of A -> B -> A", "translation.AtoB.cycle_l1"),
        ("cycle L1 of B -> A -> B", "translation.BtoA.cycle_l1"),
    ],
}


def _diagnostic_rows(task: str, summary: dict) -> list[tuple[str, str]]:
    """DIAGNOSTICS of the task, then each student of the summary (in table order): its test score
    (accuracy or MAE) and, for regression, its validation MAE."""
    names = sorted(summary.get("students", {}), key=student_order)
    if task == "classification":
        scores = [(f"{student_title(v)}: test accuracy", f"students.{v}.test_accuracy") for v in names]
    elif task == "regression":
        scores = [(f"{student_title(v)}: test MAE", f"students.{v}.test_mae") for v in names]
        scores += [(f"{student_title(v)}: validation MAE", f"students.{v}.val_mae") for v in names]
    else:
        scores = []
    return [*DIAGNOSTICS.get(task, []), *scores]


def diagnostics(params, summaries: dict[str, list[dict]]) -> str:
    """Markdown: the DIAGNOSTICS of each experiment over its seeds (mean ± std, and each seed)."""
    lines = []
    for name, runs in summaries.items():
        rows = _diagnostic_rows(params.experiment(name).task, runs[0])
        present = [(label, path) for label, path in rows if not math.isnan(value(runs[0], path))]
        if not present:
            continue
        lines += [f"Diagnostics, {name}:", "", "| measure | mean ± std | per seed |", "|---|---|---|"]
        lines += [
            f"| {label} | {_mean_std([value(r, path) for r in runs])} | "
            f"{', '.join(f'{value(r, path):.4g}' for r in runs)} |"
            for label, path in present
        ]
        lines.append("")
    return "\n".join(lines)
