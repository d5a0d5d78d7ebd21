"""Benchmarks (no files written, nothing logged): the GAN step of any profile (bench-gan), the circle
simulation's GANs (bench-circle), rejection sampling (bench-subsample), a profile's KD students
with and without the teacher-output cache (bench-student).

bench-circle trains every variant of a circle experiment at its params (the paper's: 6000 iterations, batch
128) and prints iterations per second and wall time, over the whole run and after the first
WARMUP iterations (which hold the compile of compiled iterations), and the circle metrics of the
result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.data.circle import make_circle
from pipeline.gan.binned import BinnedGenerator, Bins
from pipeline.gan.kinds import objective
from pipeline.gan.train import GanState, sample, train_gan
from pipeline.gan.variants import variant_setup
from pipeline.metrics import circle_metrics
from pipeline.nets import build_gan
from pipeline.params import CircleExperiment
from pipeline.utils import seed_everything

WARMUP = 10  # iterations timed apart: they hold the compile of compiled iterations


def bench_circle(
    exp: CircleExperiment,
    seed: int = 0,
    steps: int | None = None,
    compiled: bool | None = None,
    report: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """{variant: {"it_per_s", "seconds", "ms_per_it", "warmup_seconds", "steady_ms_per_it", circle metrics}}:
    the whole run, then its first WARMUP iterations (with any compile) and the rest apart. ILI
    variants are skipped (they need the embed stage's output). `compiled` overrides gan.compile."""
    d, p = exp.data, exp.gan
    steps = steps or p.steps
    compiled = p.compile if compiled is None else compiled
    if steps <= WARMUP:
        raise ValueError(f"bench-circle: steps must exceed the {WARMUP} warm-up iterations, not {steps}")
    ds = make_circle(d.n_train_angles, d.per_angle, d.n_eval_angles, d.eval_per_angle, d.radius, d.std, seed=seed)
    angles = torch.unique(ds.y_test)
    results = {}
    for variant, spec in p.variants.items():
        if spec.label_input == "ili" and spec.vicinity != "binned":
            report(f"{variant}: skipped (ILI needs the embed stage)")
            continue
        seed_everything(seed)
        setup = variant_setup(exp, ds, spec)  # as the gan stage builds it
        G, D = build_gan(**setup.build_args)
        cond = setup.cond
        state = GanState.create(G, D, p.lr_g, p.lr_d, (p.beta1, p.beta2))
        marks: dict[int, float] = {}
        start = time.perf_counter()
        train_gan(
            state,
            cond,
            objective=objective(p),
            z_dim=p.z_dim,
            steps=steps,
            n_dis=p.n_dis,
            batch_size=p.batch_size,
            ema_decay=p.ema_decay,
            ema_start=p.ema_start,
            compiled=compiled,
            log_every=WARMUP,
            progress=lambda step, _, marks=marks: marks.setdefault(step, time.perf_counter()),
        )
        seconds = time.perf_counter() - start
        warmup = marks[WARMUP] - start
        steady = 1000 * (marks[steps] - marks[WARMUP]) / (steps - WARMUP)
        edges = setup.arch.get("bin_edges")
        G_eval = BinnedGenerator(state.G_ema, Bins(edges)) if edges else state.G_ema
        fake = sample(G_eval, ds.normalise(angles).repeat_interleave(d.eval_per_angle), p.z_dim).view(
            len(angles), d.eval_per_angle, -1
        )
        metrics = circle_metrics(fake, angles, radius=d.radius, std=d.std)
        r = results[variant] = {
            "it_per_s": steps / seconds,
            "seconds": seconds,
            "ms_per_it": 1000 * seconds / steps,
            "warmup_seconds": warmup,
            "steady_ms_per_it": steady,
            **metrics,
        }
        report(
            f"{variant} ({'compiled' if compiled else 'eager'}): {steps} iterations (batch {p.batch_size}) "
            f"in {seconds:.1f} s = "
            f"{r['it_per_s']:.0f} it/s ({r['ms_per_it']:.2f} ms/it); first {WARMUP} iterations {warmup:.1f} s, "
            f"then {1000 / steady:.0f} it/s ({steady:.2f} ms/it); high quality {r['pct_high_quality']:.1f}%, "
            f"recovered modes {r['pct_recovered_modes']:.1f}%, 2-Wasserstein {r['w2']:.2e}"
        )
    return results


def _subsample_run(
    params_path: str, root: str, experiment: str, method: str, n_fake: int, seed: int
) -> dict[str, float]:
    """One rejection-sampling run in a fresh process: accepted fakes are counted and dropped (a
    sink that streams them elsewhere), so peak memory is the sampler's own."""
    import resource

    from pipeline.artifacts import Paths, load_generator, load_subsampler
    from pipeline.data import load_dataset
    from pipeline.metrics.variants import evaluation_labels
    from pipeline.params import load_params
    from pipeline.subsample.sampling import rejection_sample

    exp = load_params(params_path).experiment(experiment)
    paths = Paths(experiment, Path(root))
    ds = load_dataset(paths.prepared)
    G = load_generator(paths.generator(exp.dre_variant))
    sub = load_subsampler(paths, method)
    labels = evaluation_labels(exp, ds)
    n_per_label = -(-n_fake // len(labels))
    seed_everything(seed)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    stats = rejection_sample(
        lambda y: sample(G, y, exp.gan.z_dim, exp.dre.batch_size_rs),
        sub.score,
        labels,
        n_per_label,
        lambda x, y, psi: None,
        burnin=exp.dre.burnin,
        batch_size=exp.dre.batch_size_rs,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = stats.summary()
    return {
        "accepted": s["n_accepted"],
        "seconds": seconds,
        "accepted_per_s": s["n_accepted"] / seconds,
        "acceptance_rate": s["acceptance_rate"],
        "peak_rss_mb": peak,
        "rss_growth_mb": peak - base,
    }


def bench_subsample(
    params_path: Path,
    root: Path,
    experiments: list[str],
    n_fake: int,
    method: str,
    seed: int = 0,
    report: Callable[[str], None] = print,
) -> dict[str, list[dict[str, float]]]:
    """Per experiment: accepted fakes per second and acceptance rate of `method`+RS at its
    evaluation labels, for n_fake and 10 x n_fake fakes, each in a fresh process, with the peak
    resident memory (which must not grow tenfold: candidates are streamed, never all held)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    out: dict[str, list[dict[str, float]]] = {}
    for name in experiments:
        out[name] = []
        for n in (n_fake, 10 * n_fake):
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                r = pool.submit(_subsample_run, str(params_path), str(root), name, method, n, seed).result()
            out[name].append(r)
            report(
                f"{name} {method}+RS: {r['accepted']} fakes in {r['seconds']:.2f} s = "
                f"{r['accepted_per_s']:.0f} accepted fakes/s, "
                f"acceptance rate {r['acceptance_rate']:.1%}, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(+{r['rss_growth_mb']:.0f} MB while sampling)"
            )
    return out


# bench-gan: the GAN step of any profile on the current device, on random data of the profile's shape
CHANNELS = {"digits": 1, "mnist": 1, "fashion_mnist": 1, "chairs": 1, "chair_models": 1}  # others: RGB
CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


class _Shaped:
    """A stand-in data set with the profile's image shape and labels (the step's cost does not
    depend on the pixels), so a profile can be measured before its data are on disk."""

    def __init__(self, exp, n: int) -> None:
        d = exp.data
        if exp.task == "circle":
            self.x_train = torch.randn(n, 2)
        else:
            self.x_train = torch.rand(n, CHANNELS.get(d.name, 3), d.image_size, d.image_size) * 2 - 1
        if exp.task in ("classification", "ganzoo"):
            self.num_classes = d.n_models if d.name == "chair_models" else CLASSES[d.name]
            self.y_train = torch.arange(n) % self.num_classes
            self.class_names = tuple(str(c) for c in range(self.num_classes))
        else:  # continuous labels, already in [0, 1], on a grid of 500 distinct values
            self.num_classes = 0
            self.y_train = (torch.arange(n) % 500).float() / 499

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        return y


def _stand_in_encoder(exp, ds, folder: Path) -> Path:
    """An untrained classifier of the net KD-DLGAN's encoder 'teacher' would be (the step's cost
    does not depend on its weights), saved under `folder`."""
    from pipeline.artifacts import save_classifier
    from pipeline.nets import build_classifier

    p = exp.gan.kd_teacher if exp.task == "ganzoo" else exp.teacher
    path = folder / "encoder.pt"
    net = build_classifier(p.net, ds.channels, ds.num_classes, p.width)
    save_classifier(net, path, net=p.net, in_channels=ds.channels, num_classes=ds.num_classes, width=p.width)
    return path


def bench_gan(
    exp,
    rt=None,
    iterations: int | None = None,
    warmup: int | None = None,
    seed: int = 0,
    report: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """{variant: {"it_per_s", "samples_per_s", "ms_per_it", "peak_mb"}} of the GAN step (n_dis D
    steps and one G step at the profile's nets, batch size, loss and label sampling; the EMA
    update and checkpoints left out), timed after `warmup` iterations. Under torchrun the batch is
    the global one and rank 0 reports. Peak memory: the GPU's peak allocation, or on the CPU the
    process's peak resident set (which includes everything loaded before)."""
    import resource

    from pipeline import runtime
    from pipeline.gan.variants import build_variant, variant_jobs
    from pipeline.nets import Y2H

    rt = rt or runtime.current()
    iterations = iterations or (20 if rt.cuda else 5)
    warmup = warmup if warmup is not None else (5 if rt.cuda else 2)
    p = exp.gan
    ds = _Shaped(exp, max(8 * p.batch_size, 1000))
    results = {}
    jobs = variant_jobs(exp)
    folder = tempfile.TemporaryDirectory()
    own = None  # built only when a variant distils the encoder 'teacher'
    if any((kd := getattr(pv, "kd_dlgan", None)) is not None and kd.encoder == "teacher" for _, _, pv in jobs):
        own = _stand_in_encoder(exp, ds, Path(folder.name))
    for variant, spec, pv in jobs:
        seed_everything(seed)
        setup, G, D, _ = build_variant(exp, ds, spec, lambda: Y2H().state_dict(), own_encoder=own)
        assert setup.objective is not None
        state = GanState.create(rt.prepare(G), rt.prepare(D), pv.lr_g, pv.lr_d, (pv.beta1, pv.beta2))
        kw = {"objective": setup.objective.to(rt.device), "z_dim": pv.z_dim, "n_dis": pv.n_dis}
        kw |= {"batch_size": pv.batch_size}
        kw |= {"ema_decay": 0.0, "ema_start": 0, "log_every": 10**9, "rt": rt}
        if rt.cuda:
            torch.cuda.reset_peak_memory_stats()
        train_gan(state, setup.cond, steps=warmup, **kw)
        _sync(rt)
        start = time.perf_counter()
        train_gan(state, setup.cond, steps=warmup + iterations, **kw)
        _sync(rt)
        seconds = time.perf_counter() - start
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if rt.cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        r = results[variant] = {
            "it_per_s": iterations / seconds,
            "samples_per_s": iterations * p.batch_size * (p.n_dis + 1) / seconds,
            "ms_per_it": 1000 * seconds / iterations,
            "peak_mb": peak,
        }
        n_params = sum(t.numel() for t in G.parameters()), sum(t.numel() for t in D.parameters())
        report(
            f"{variant}: G {n_params[0] / 1e6:.2f}M / D {n_params[1] / 1e6:.2f}M parameters, batch {p.batch_size}, "
            f"n_dis {p.n_dis}: {r['it_per_s']:.2f} it/s ({r['ms_per_it']:.0f} ms/it), "
            f"{r['samples_per_s']:.0f} generated samples/s, peak {'GPU memory' if rt.cuda else 'RSS'} "
            f"{peak:.0f} MB ({iterations} iterations after {warmup} warm-up)"
        )
    folder.cleanup()
    return results


def bench_student(
    exp,
    n_real: int,
    n_fake: int,
    steps: int,
    seed: int = 0,
    report: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """{method: {"cached_seconds", "direct_seconds", "speedup"}}: `steps` steps of the profile's
    student distilled by each method of student.methods (TAKD: from an assistant of student.takd's
    net) from an untrained teacher of the profile's net, on stand-in data of the profile's shape
    (n_real reals, n_fake fakes at student.fake_fraction), without augmentation: once with the
    teacher's outputs computed up front (the time includes computing them) and once with the
    teacher on every batch. The student's step does not depend on the weights or the pixels."""
    from pipeline.distill.fit import method_section
    from pipeline.distill.methods import build_method
    from pipeline.distill.train import TEACHER_CACHE_BYTES, train_classifier
    from pipeline.nets import build_classifier

    p = exp.student
    classification = exp.task == "classification"
    ds = _Shaped(exp, n_real + n_fake)
    x, y, x_fake, y_fake = ds.x_train[:n_real], ds.y_train[:n_real], ds.x_train[n_real:], ds.y_train[n_real:]
    out_dim = ds.num_classes if classification else 1
    results = {}
    for name in p.methods:
        net, width = (p.takd.net, p.takd.width) if name == "takd" else (exp.teacher.net, exp.teacher.width)
        seed_everything(seed)
        teacher = build_classifier(net, ds.channels, out_dim, width).eval()
        seconds = {}
        for mode, cache_bytes in (("cached", TEACHER_CACHE_BYTES), ("direct", 0)):
            seed_everything(seed)
            student = build_classifier(p.net, ds.channels, out_dim, p.width)
            method = build_method(name, method_section(p, name), student, teacher, x[:2], n_real + n_fake)
            start = time.perf_counter()
            train_classifier(
                student, x, y, steps=steps, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                loss="ce" if classification else p.loss, method=method, teacher=teacher, x_fake=x_fake,
                y_fake=y_fake, fake_fraction=p.fake_fraction, log_every=steps, teacher_cache_bytes=cache_bytes,
            )  # fmt: skip
            seconds[mode] = time.perf_counter() - start
        r = results[name] = {
            "cached_seconds": seconds["cached"],
            "direct_seconds": seconds["direct"],
            "speedup": seconds["direct"] / seconds["cached"],
        }
        report(
            f"{name}: {steps} steps of batch {p.batch_size} ({p.net} w{p.width} from {net} w{width}, "
            f"{n_real} reals + {n_fake} fakes): teacher outputs computed once {r['cached_seconds']:.1f} s, "
            f"teacher on every batch {r['direct_seconds']:.1f} s ({r['speedup']:.1f}x)"
        )
    return results


def _sync(rt) -> None:
    if rt.cuda:
        torch.cuda.synchronize()
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()


class _Clock:
    """Seconds spent in, and items passed through, the functions it wraps."""

    def __init__(self) -> None:
        self.seconds, self.items = 0.0, 0

    def wrap(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def timed(x: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            out = fn(x)
            self.seconds += time.perf_counter() - start
            self.items += len(x)
            return out

        return timed


def _fresh(inp, q, gen: _Clock | None = None, feat: _Clock | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The dre stage's draw of fresh fakes (fit.fake_draw), its generator and feature net timed."""
    from pipeline.subsample.fit import fake_draw

    gen, feat = gen or _Clock(), feat or _Clock()
    return fake_draw(feat.wrap(inp.phi.features), feat.wrap(inp.phi.head), gen.wrap(inp.generate), q, inp.zeta)


# bench-dre's two settings of fresh fakes: the reference's (new fakes for every batch, as this
# project drew them before blocks) and the experiment's dre params
PER_BATCH = {"fresh_block": 1, "fresh_reuse": 1, "max_redraws": 10}


def bench_dre(
    exp,
    paths,
    steps: int,
    method: str = "cdre",
    seed: int = 0,
    report: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """{"per_batch" | "params": {"steps_per_s", "generate_share", "features_share", "update_share",
    "generated_per_step", "generated_per_shown"}}: `steps` training steps of the `method` ratio
    net with fresh fakes on the experiment's trained generator and feature net (the dre stage's
    inputs), once with new fakes for every batch (PER_BATCH) and once with the experiment's dre
    params (fresh_block, fresh_reuse, max_redraws). Shares of the step: generating fakes, their
    features (and, in a label window, the predicted label), the rest (the ratio net's update)."""
    from pipeline.stages.dre import inputs
    from pipeline.subsample.fit import RatioData, fit_ratio
    from pipeline.utils import features_of

    inp = inputs(exp, paths)
    p = exp.dre
    h_real = features_of(inp.phi, inp.train[0])
    h_held = features_of(inp.phi, inp.held[0][:256])
    results = {}
    warm = p.model_copy(update={"steps": min(steps, 20), **PER_BATCH})  # first calls (allocations) untimed
    held = (h_held, inp.held[1][:256], h_held)  # the held-out check is not timed: any stand-in
    fit_ratio(
        RatioData(h_real, inp.train[1], _fresh(inp, warm), *held),
        method,
        warm,
        num_classes=inp.num_classes,
        y2h=inp.y2h,
    )
    for name, setting in (("per_batch", PER_BATCH), ("params", {})):
        q = p.model_copy(update={"steps": steps, "fresh_fakes": True, **setting})
        gen, feat = _Clock(), _Clock()
        data = RatioData(h_real, inp.train[1], _fresh(inp, q, gen, feat), *held)
        seed_everything(seed)
        start = time.perf_counter()
        fit_ratio(data, method, q, num_classes=inp.num_classes, y2h=inp.y2h)
        seconds = time.perf_counter() - start
        shown = steps * q.batch_size
        r = results[name] = {
            "steps_per_s": steps / seconds,
            "generate_share": gen.seconds / seconds,
            "features_share": feat.seconds / seconds,
            "update_share": 1 - (gen.seconds + feat.seconds) / seconds,
            "generated_per_step": gen.items / steps,
            "generated_per_shown": gen.items / shown,
        }
        report(
            f"{name} (block {q.fresh_block}, reuse {q.fresh_reuse}, max redraws {q.max_redraws}): {steps} steps of "
            f"batch {q.batch_size} in {seconds:.1f} s = {r['steps_per_s']:.1f} steps/s; generating "
            f"{r['generate_share']:.0%}, features {r['features_share']:.0%}, update {r['update_share']:.0%}; "
            f"{r['generated_per_step']:.0f} fakes generated a step ({r['generated_per_shown']:.2f} per fake shown)"
        )
    speedup = results["params"]["steps_per_s"] / results["per_batch"]["steps_per_s"]
    report(f"{method} ratio net: {speedup:.1f}x the steps per second of new fakes for every batch")
    return results
