"""The stages of a translation experiment (CycleGAN between unpaired domains A and B).

prepare   the built-in chair styles or a user's trainA/ trainB/ testA/ testB/ folders
          -> data/<exp>/prepared/dataset.pt
evalnets  the evaluation nets, trained on real training images only: a domain classifier (A or B)
          and, where the data set knows a label (the chairs' yaw), a regressor of that label on
          domain B -> models/<exp>/eval_nets/
gan       G: A -> B and F: B -> A with their PatchGAN discriminators -> models/<exp>/gan/cyclegan.pt
          (resumes from its checkpoint under the same config)
evaluate  on the test split: the label read from G(x) against x's own (and the same for the
          identity mapping, the baseline), FID in the evaluation net's features, the cycle L1
          errors, the share of translations the domain classifier takes for the target domain,
          and grids x | G(x) | F(G(x)) -> metrics/<exp>.json, .md
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline import runtime, tracking
from pipeline.artifacts import (
    Paths,
    load_classifier,
    load_translator,
    save_classifier,
    save_gan,
    write_csv,
    write_json,
    write_text,
)
from pipeline.data.translation import (
    TranslationDataset,
    load_chair_styles,
    load_image_folders,
    load_translation,
    save_translation,
)
from pipeline.distill.train import train_classifier
from pipeline.figures import save_curves, save_grid
from pipeline.gan.cycle import CycleState, l1, train_cycle, translate
from pipeline.metrics import fid
from pipeline.nets import build_classifier
from pipeline.nets.cyclegan import build_cyclegan
from pipeline.params import Params
from pipeline.stages.gan import data_id, resume
from pipeline.ui import info, progress_bar
from pipeline.utils import predict, seed_everything

VARIANT = "cyclegan"  # models/<exp>/gan/cyclegan.pt
DIRECTIONS = ("AtoB", "BtoA")


def prepare(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).data
    if p.name == "chair_styles":
        ds = load_chair_styles(p.image_size, p.n_models, p.n_train, p.n_test, seed=params.seed)
    else:
        assert p.root is not None
        ds = load_image_folders(p.root, p.image_size, p.channels)
    save_translation(ds, paths.prepared)
    stats = {
        "n_train_a": len(ds.a_train),
        "n_train_b": len(ds.b_train),
        "n_test_a": len(ds.a_test),
        "n_test_b": len(ds.b_test),
        "shape": list(ds.a_train.shape[1:]),
        "labels": ds.label_name or None,
    }
    write_json(paths.metrics / "prepare.json", stats)
    info(
        f"prepare[{experiment}]: domain A {stats['n_train_a']} training / {stats['n_test_a']} test images, domain B "
        f"{stats['n_train_b']} / {stats['n_test_b']}, {'x'.join(map(str, stats['shape']))}"
        + (f", labels: {ds.label_name}" if ds.has_labels else "")
        + f" -> {paths.prepared}"
    )
    return stats


# --- evaluation nets ----------------------------------------------------------------------------------------------


def _eval_net_paths(paths: Paths) -> tuple[Path, Path]:
    return paths.eval_nets / "domain.pt", paths.eval_nets / "regressor.pt"


def evalnets(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).evaluate
    ds = load_translation(paths.prepared)
    seed_everything(params.seed)
    domain_path, regressor_path = _eval_net_paths(paths)
    arch = {"net": p.net, "in_channels": ds.channels, "width": p.width}
    train = {"steps": p.steps, "batch_size": p.batch_size, "lr": p.lr}
    with tracking.stage_run(experiment, "evalnets", {"seed": params.seed, "evalnets": p.model_dump(mode="json")}):
        x = torch.cat([ds.a_train, ds.b_train])
        d = torch.cat([torch.zeros(len(ds.a_train)), torch.ones(len(ds.b_train))]).long()
        domain = build_classifier(p.net, ds.channels, 2, p.width)
        with progress_bar(f"evalnets[{experiment}] domain classifier", p.steps) as bar:
            train_classifier(domain, x, d, loss="ce", progress=bar, **train)
        metrics = {"domain_test_accuracy": _accuracy(domain, torch.cat([ds.a_test, ds.b_test]), len(ds.a_test))}
        save_classifier(domain, domain_path, num_classes=2, **arch)
        if ds.has_labels:
            regressor = build_classifier(p.net, ds.channels, 1, p.width)
            with progress_bar(f"evalnets[{experiment}] domain-B label regressor", p.steps) as bar:
                train_classifier(
                    regressor, ds.b_train, ds.normalise(ds.label_b_train), loss="mse", progress=bar, **train
                )
            metrics["regressor_test_mae_b"] = _label_error(regressor, ds, ds.b_test, ds.label_b_test)
            save_classifier(regressor, regressor_path, num_classes=1, **arch)
        else:
            regressor_path.unlink(missing_ok=True)
        tracking.log_metrics(metrics)
    write_json(paths.metrics / "evalnets.json", metrics)
    info(f"evalnets[{experiment}]: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return metrics


def _accuracy(domain: torch.nn.Module, x: torch.Tensor, n_a: int) -> float:
    """The domain classifier's accuracy on the test images (the first n_a are A's, the rest B's)."""
    pred = predict(domain, x).argmax(1)
    return float((pred == (torch.arange(len(x)) >= n_a).long()).float().mean())


def _label_error(regressor: torch.nn.Module, ds: TranslationDataset, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean |label read by the regressor - labels|, in label units."""
    lo, hi = ds.label_range
    return float((predict(regressor, x).view(-1) * (hi - lo) + lo - labels).abs().mean())


def _reads_as(domain: torch.nn.Module, x: torch.Tensor, target: int) -> float:
    """Share of images the domain classifier takes for domain `target` (0: A, 1: B)."""
    return float((predict(domain, x).argmax(1) == target).float().mean())


# --- the CycleGAN ------------------------------------------------------------------------------------------------


def _arch(exp, channels: int) -> dict:
    g = exp.gan
    return {
        "channels": channels,
        "g_width": g.g_width,
        "n_blocks": g.n_blocks,
        "n_down": g.n_down,
        "d_width": g.d_width,
        "d_layers": g.d_layers,
    }


def train(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.gan
    ds = load_translation(paths.prepared)
    arch = _arch(exp, ds.channels)
    config = json.dumps(
        {"gan": p.model_dump(mode="json"), "seed": params.seed, "data": data_id(ds.a_train, ds.b_train)}, sort_keys=True
    )
    path = paths.generator(VARIANT)
    rt = runtime.current()
    seed_everything(params.seed)
    G, F, D_a, D_b = (net.to(rt.device) for net in build_cyclegan(arch))
    state = CycleState.create(G, F, D_a, D_b, p.lr, (p.beta1, p.beta2), p.pool_size)
    name = f"gan[{experiment}/{VARIANT}]"
    resume(state, path, config, name, p.steps)

    def checkpoint(s: CycleState) -> None:
        save_gan(path, config=config, arch=arch, state=s.state_dict())

    with tracking.stage_run(experiment, "gan", {"seed": params.seed, "gan": p.model_dump(mode="json")}):
        with progress_bar(name, p.steps) as bar:
            bar(state.step, {})
            train_cycle(
                state,
                ds.a_train,
                ds.b_train,
                steps=p.steps,
                batch_size=p.batch_size,
                decay_start=round(p.decay_from * p.steps),
                loss=p.loss,
                lambda_cyc=p.lambda_cyc,
                lambda_id=p.lambda_id,
                log_every=p.log_every,
                checkpoint_every=p.checkpoint_every,
                on_checkpoint=checkpoint,
                progress=bar,
            )
        tracking.log_history(state.history)
        (paths.metrics / "gan_losses").mkdir(parents=True, exist_ok=True)
        write_csv(paths.metrics / "gan_losses" / f"{VARIANT}.csv", state.history)
        h = state.history
        curves = {k: ([r["step"] for r in h], [r[k] for r in h]) for k in ("d_loss", "g_adv", "cycle", "identity")}
        save_curves(curves, paths.metrics / "gan_losses.png", f"CycleGAN losses ({experiment})")
        tracking.log_artifact(paths.metrics / "gan_losses.png")
    last = state.history[-1] if state.history else {}
    summary = {VARIANT: {"steps": state.step, **{k: v for k, v in last.items() if k != "step"}}}
    write_json(paths.metrics / "gan.json", summary)
    info(f"{name}: {state.step} steps, " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step"))
    return summary


# --- evaluation ---------------------------------------------------------------------------------------------------


def evaluate(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    ds = load_translation(paths.prepared)
    domain_path, regressor_path = _eval_net_paths(paths)
    domain = load_classifier(domain_path)
    regressor = load_classifier(regressor_path) if ds.has_labels else None
    features, feature_name = (regressor, "label_regressor") if regressor is not None else (domain, "domain_classifier")
    G = load_translator(paths.generator(VARIANT), "AtoB")
    F = load_translator(paths.generator(VARIANT), "BtoA")
    seed_everything(params.seed)
    fake_b, fake_a = translate(G, ds.a_test), translate(F, ds.b_test)
    rec_a, rec_b = translate(F, fake_b), translate(G, fake_a)
    fid_key = f"fid_{feature_name}_features"
    rows: dict[str, dict[str, float]] = {
        "AtoB": {
            fid_key: fid(features, ds.b_test, fake_b),
            "reads_as_target": _reads_as(domain, fake_b, 1),
            "cycle_l1": float(l1(rec_a, ds.a_test)),
        },
        "identity AtoB": {
            fid_key: fid(features, ds.b_test, ds.a_test),
            "reads_as_target": _reads_as(domain, ds.a_test, 1),
        },
        "BtoA": {"reads_as_target": _reads_as(domain, fake_a, 0), "cycle_l1": float(l1(rec_b, ds.b_test))},
        "identity BtoA": {"reads_as_target": _reads_as(domain, ds.b_test, 0)},
    }
    if regressor is not None:
        rows["AtoB"]["label_error"] = _label_error(regressor, ds, fake_b, ds.label_a_test)
        rows["identity AtoB"]["label_error"] = _label_error(regressor, ds, ds.a_test, ds.label_a_test)
    reference = {
        f"{fid_key}_real_b_train_vs_test": fid(features, ds.b_test, ds.b_train),
        "domain_test_accuracy": _accuracy(domain, torch.cat([ds.a_test, ds.b_test]), len(ds.a_test)),
    }
    if regressor is not None:
        reference["label_error_real_b_test"] = _label_error(regressor, ds, ds.b_test, ds.label_b_test)
        # a mapping that loses the label altogether can at best read one constant: B's median label
        guess = ds.label_b_train.median()
        reference["label_error_constant_guess"] = float((ds.label_a_test - guess).abs().mean())
    summary = {
        "translation": rows,
        "reference": reference,
        "label_name": ds.label_name or None,
        "thresholds": {  # what the claims compare with (pipeline/claims.py)
            "reads_as_target": 0.5,
            **({"label_error": exp.evaluate.pose_target} if regressor is not None else {}),
        },
    }
    n = min(10, len(ds.a_test), len(ds.b_test))
    save_grid(torch.cat([ds.a_test[:n], fake_b[:n], rec_a[:n]]), paths.metrics / "translation_AtoB.png", nrow=n)
    save_grid(torch.cat([ds.b_test[:n], fake_a[:n], rec_b[:n]]), paths.metrics / "translation_BtoA.png", nrow=n)
    headline = {"task": "translation", "gan_metric": fid_key, "gan": rows["AtoB"][fid_key]}
    if regressor is not None:
        headline["label_error"] = rows["AtoB"]["label_error"]
    with tracking.stage_run(
        experiment, "evaluate", {"seed": params.seed, "evaluate": exp.evaluate.model_dump(mode="json")}
    ):
        tracking.log_metrics(
            {**{f"{r.replace(' ', '_')}_{k}": v for r, m in rows.items() for k, v in m.items()}, **reference}
        )
        write_json(paths.summary_json, summary)
        write_json(paths.headline, headline)
        write_text(paths.summary_md, summary_markdown(experiment, summary))
        for name in ("translation_AtoB.png", "translation_BtoA.png"):
            tracking.log_artifact(paths.metrics / name)
        tracking.log_artifact(paths.summary_md)
    for r, m in rows.items():
        info(f"evaluate[{experiment}]: {r}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    info(f"evaluate[{experiment}] -> {paths.summary_md}")
    return summary


def _table(rows: dict[str, dict[str, float]]) -> list[str]:
    from pipeline.report import gan_table

    lines = gan_table(rows)
    return [lines[0].replace("| GAN |", "| mapping |", 1), *lines[1:]]


def summary_markdown(experiment: str, summary: dict) -> str:
    ref = summary["reference"]
    label = summary.get("label_name")
    quantity = label.split(" (")[0] if label else ""  # "yaw angle (degrees)" -> "yaw angle"
    lines = [
        f"## {experiment}",
        "",
        f"Domain classifier (A or B) test accuracy on real images: {ref['domain_test_accuracy']:.4f}",
    ]
    if label:
        lines.append(
            f"Domain-B regressor of the {label}: test error {ref['label_error_real_b_test']:.4g} on real B images"
        )
    fid_ref = next(v for k, v in ref.items() if k.startswith("fid_"))
    lines += [
        "",
        *_table(summary["translation"]),
        "",
        "AtoB = G(x) for the test images x of domain A, BtoA = F(y) for those of B; identity = the images left as "
        "they are (the baseline). reads_as_target: share the domain classifier takes for the target domain. "
        "cycle_l1: mean |F(G(x)) - x| (AtoB) and |G(F(y)) - y| (BtoA) on [-1, 1] pixels. FID: in the evaluation "
        f"net's features against the target domain's test images (real B train vs test: {fid_ref:.4g}).",
    ]
    if label:
        lines.append(
            f"label_error: mean |{label} read from the image by the domain-B regressor - x's true one| (the claim: "
            f"below {summary['thresholds']['label_error']:g}; a mapping that loses the {quantity} and reads B's median "
            f"one for every image scores {ref['label_error_constant_guess']:.4g}; the identity row is the regressor "
            "far outside its domain, whose readings can leave the label range)."
        )
    lines += ["Grids: translation_AtoB.png, translation_BtoA.png (rows: x, G(x), F(G(x)))", ""]
    return "\n".join(lines)


# --- `cgankd translate` ---------------------------------------------------------------------------------------------


def translate_files(
    params: Params, experiment: str, paths: Paths, inputs: list[Path], out: Path, direction: str
) -> list[Path]:
    """Translate image files (or every image in the folders named) with the experiment's trained
    generator of `direction`; writes out/<name>.png for each (at the model's image size) and
    out/translations.png (rows: inputs, translations). Returns the files written."""
    from PIL import Image

    from pipeline.data.translation import image_files, read_images
    from pipeline.errors import DataError, ParamsError
    from pipeline.utils import atomic_write

    exp = params.experiment(experiment)
    if exp.task != "translation":
        raise ParamsError(f"experiments.{experiment}: a {exp.task} experiment, not a translation one")
    if direction not in DIRECTIONS:
        raise ParamsError(f"--direction must be AtoB or BtoA, got {direction!r}")
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise DataError(f"{item}: no images in it")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    names = [f.stem for f in files]
    if len(set(names)) != len(names):
        raise DataError("two inputs share a file name (outputs are out/<name>.png): translate them separately")
    G = load_translator(paths.generator(VARIANT), direction)
    channels = G.channels
    x = read_images(files, exp.data.image_size, channels)
    y = translate(G, x)
    written = []
    for name, image in zip(names, y, strict=True):
        pixels = ((image.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        target = out / f"{name}.png"
        atomic_write(target, lambda tmp, picture=picture: picture.save(tmp, format="png"))
        written.append(target)
    save_grid(torch.cat([x[:16], y[:16]]), out / "translations.png", nrow=min(16, len(x)))
    info(f"translate[{experiment}] {direction}: {len(files)} image(s) -> {out}/ (side by side: translations.png)")
    return written
