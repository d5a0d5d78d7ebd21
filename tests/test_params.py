import pydantic
import pytest
import yaml

from pipeline.errors import ParamsError
from pipeline.params import load_params, validate
from tests.conftest import REPO, tiny_raw_params


def test_committed_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert "digits" in params.experiments
    assert params.experiment("digits").data.name == "digits"


def test_params_are_frozen():
    params = validate(tiny_raw_params())
    with pytest.raises(pydantic.ValidationError):
        params.experiments["tiny"].gan.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r["experiments"]["tiny"]["gan"].update(stepz=3), "experiments.tiny.gan.stepz: unknown key"),
        (
            lambda r: r["experiments"]["tiny"]["gan"].update(steps="many"),
            "experiments.tiny.gan.steps: Input should be a valid integer",
        ),
        (
            lambda r: r["experiments"]["tiny"]["synthesize"].update(rho=1.5),
            "experiments.tiny.synthesize.rho: Input should be less than or equal to 1",
        ),
        (
            lambda r: r["experiments"]["tiny"]["student"]["blkd"].update(temperature=0),
            "experiments.tiny.student.blkd.temperature: Input should be greater than 0",
        ),
        (lambda r: r.update(sed=1), "sed: unknown key"),
        (
            lambda r: r["experiments"]["tiny"]["data"].update(name="cifar10", root=None),
            "experiments.tiny.data: data set 'cifar10' is read from local files: set root",
        ),
    ],
)
def test_bad_params_name_the_key(mutate, expected):
    raw = tiny_raw_params()
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        validate(raw)
    assert str(err.value).startswith(f"params: {expected}")
    assert "\n" not in str(err.value)


def test_unknown_experiment_lists_known(tmp_path):
    params = validate(tiny_raw_params())
    with pytest.raises(ParamsError, match=r"experiments.nope: no such experiment \(known: tiny\)"):
        params.experiment("nope")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(tiny_raw_params()))
    assert load_params(ok).seed == 0


def test_ratio_width_is_free_without_groupnorm():
    raw = tiny_raw_params("classification", "regression", "circle")
    raw["experiments"]["tiny"]["dre"].update(width=100, norm="none")
    assert validate(raw).experiment("tiny").dre.width == 100


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda r: r["experiments"]["tiny_reg"]["gan"].update(m_kappa=0),
            "experiments.tiny_reg.gan.m_kappa: Input should be greater than 0",
        ),
        (
            lambda r: r["experiments"]["tiny_circle"]["gan"]["variants"]["hvdl"].update(vicinity="fuzzy"),
            "experiments.tiny_circle.gan.variants.hvdl.vicinity: Input should be 'hard', 'soft' or 'binned'",
        ),
        (
            lambda r: r["experiments"]["tiny_reg"]["synthesize"].update(gan_variant="nope"),
            "experiments.tiny_reg: synthesize.gan_variant 'nope' is not a gan variant",
        ),
        (
            lambda r: r["experiments"]["tiny_reg"].update(task="circle"),
            "experiments.tiny_reg.data.name: Input should be 'circle'",
        ),
        (
            lambda r: r["experiments"]["tiny"]["synthesize"].update(subsampling="rs"),
            "experiments.tiny.synthesize.subsampling: Input should be 'none', 'dre' or 'cdre'",
        ),
        (
            lambda r: r["experiments"]["tiny"]["dre"].update(width=100),
            "experiments.tiny.dre: width 100: use a multiple of 8",
        ),
        (
            lambda r: r["experiments"]["tiny"]["dre"].update(norm="batch"),
            "experiments.tiny.dre.norm: Input should be 'group' or 'none'",
        ),
        (
            lambda r: r["experiments"]["tiny_circle"]["dre"].update(gan_variant="nope"),
            "experiments.tiny_circle: dre.gan_variant 'nope' is not a gan variant",
        ),
        (
            lambda r: r["experiments"]["tiny_reg"]["dre"].update(gan_variant="binned"),
            "experiments.tiny_reg: synthesize.subsampling needs the density ratio of synthesize.gan_variant "
            "'svdl_ili', but dre.gan_variant is 'binned'",
        ),
        (
            lambda r: r["groups"].update(kd=["tiny"]),
            "<top level>: groups.kd must list the experiments with task classification or regression: [tiny, tiny_reg]",
        ),
    ],
)
def test_bad_continuous_params_name_the_key(mutate, expected):
    raw = tiny_raw_params("classification", "regression", "circle")
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        validate(raw)
    assert str(err.value).startswith(f"params: {expected}"), str(err.value)


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        (
            "gan",
            "loss",
            "wasserstein-magic",
            "experiments.tiny.gan.loss: unknown GAN loss 'wasserstein-magic' (known: bce, hinge",
        ),
        ("gan", "arch", "stylegan9", "experiments.tiny.gan.arch: unknown GAN arch 'stylegan9' (known: mlp, sngan)"),
        ("gan", "d_head", "max", "experiments.tiny.gan.d_head: Input should be 'sum' or 'ccgan'"),
        (
            "student",
            "net",
            "transformer9",
            "experiments.tiny.student.net: unknown classifier net 'transformer9' (known: cnn, mlp, mobilenetv2, "
            "resnet, resnet110, resnet14, resnet18, resnet20, resnet32, resnet34, resnet56, shufflenetv2, vgg11, "
            "vgg13, vgg16, vgg19, vgg8, wrn16, wrn40)",
        ),
        ("teacher", "net", "vgg", "experiments.tiny.teacher.net: unknown classifier net 'vgg'"),
        (
            "features",
            "net",
            "teachr",
            "experiments.tiny.features.net: unknown classifier net 'teachr' (known: cnn, mlp, mobilenetv2, resnet, "
            "resnet110, resnet14, resnet18, resnet20, resnet32, resnet34, resnet56, shufflenetv2, teacher, vgg11, "
            "vgg13, vgg16, vgg19, vgg8, wrn16, wrn40)",
        ),
        (
            "student",
            "methods",
            ["blkd", "distill-magic"],
            "experiments.tiny.student.methods.1: unknown KD method 'distill-magic' (known: at, blkd, crd, fitnet, "
            "rkd, takd)",
        ),
        ("teacher", "lr", float("inf"), "experiments.tiny.teacher.lr: must be finite"),
        ("gan", "lr_d", float("nan"), "experiments.tiny.gan.lr_d: must be finite"),
    ],
)
def test_registry_names_and_non_finite_numbers_are_refused_by_any_stage(tmp_path, section, key, value, expected):
    """`cgankd prepare` uses none of these keys, and still refuses them before writing anything."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    raw = tiny_raw_params()
    raw["experiments"]["tiny"][section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["prepare", "-e", "tiny", "-p", str(path), "--root", str(tmp_path / "repo")])
    assert result.exit_code == 2
    assert f"error: params: {expected}" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "repo").exists()


def test_a_kd_method_that_does_not_apply_to_regression_is_refused_with_the_reason():
    raw = tiny_raw_params("regression")
    raw["experiments"]["tiny_reg"]["student"]["methods"] = ["rkd", "crd"]
    with pytest.raises(ParamsError) as err:
        validate(raw)
    assert (
        "experiments.tiny_reg.student: methods: crd does not apply to regression: it treats every other sample"
        in str(err.value)
    )
    assert "(use at, fitnet, rkd)" in str(err.value)


def test_distributed_stages_belong_to_their_task_and_translation_trains_in_one_process():
    from pipeline.params import DISTRIBUTED_STAGES, TASK_STAGES

    for task, stages in DISTRIBUTED_STAGES.items():
        assert set(stages) <= set(TASK_STAGES[task]) - {"prepare", "synthesize", "evaluate"}, task
    params = load_params(REPO / "params.yaml")
    task_of = {name: exp.task for name, exp in params.experiments.items()}
    trans = next(n for n, t in task_of.items() if t == "translation")
    kd = next(n for n, t in task_of.items() if t == "classification")
    assert not any(params.distributed(trans, s) for s in params.stages(trans))
    assert params.distributed(kd, "gan") and params.distributed(kd, "student")
    assert not params.distributed(kd, "evaluate")
