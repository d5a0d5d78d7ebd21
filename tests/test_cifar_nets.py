"""The full-size CIFAR nets: shapes, stage maps, parameter counts against the published ones, and
the KD methods on teacher / student pairs of them."""

import pytest
import torch

from pipeline.distill.fit import method_section
from pipeline.distill.methods import METHODS, build_method
from pipeline.errors import ParamsError
from pipeline.nets import build_classifier
from pipeline.params import StudentParams, validate
from tests.conftest import tiny_raw_params

# name, width, (channels, size) of each stage map at a 32x32 input, feature_dim
CIFAR_NETS = [
    ("resnet110", 16, [(16, 32), (32, 16), (64, 8)], 64),
    ("wrn40", 32, [(32, 32), (64, 16), (128, 8)], 128),
    ("vgg8", 64, [(64, 32), (128, 16), (256, 8), (512, 4), (512, 2)], 512),
    ("mobilenetv2", 16, [(12, 16), (16, 8), (48, 4), (1280, 2)], 1280),
    ("mobilenetv2", 32, [(24, 16), (32, 8), (96, 4), (1280, 2)], 1280),
    ("shufflenetv2", 116, [(116, 16), (232, 8), (1024, 4)], 1024),
]


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, width, maps, feature_dim", CIFAR_NETS)
def test_cifar_net_shapes_and_stage_maps(name, width, maps, feature_dim):
    torch.manual_seed(0)
    net = build_classifier(name, 3, 100, width).eval()
    x = torch.randn(2, 3, 32, 32)
    kd = net.forward_kd(x)
    assert kd.logits.shape == (2, 100) and net.feature_dim == feature_dim
    assert [(m.shape[1], m.shape[2]) for m in kd.maps] == maps and all(m.shape[2] == m.shape[3] for m in kd.maps)
    # one pass gives what forward and features give: the head on the pooled last map
    assert torch.allclose(kd.logits, net(x), atol=1e-5) and torch.allclose(kd.embedding, net.features(x), atol=1e-5)
    assert torch.allclose(kd.embedding, kd.maps[-1].mean(dim=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("name, width", [(n, w) for n, w, *_ in CIFAR_NETS])
@pytest.mark.parametrize("size, channels", [(16, 1), (8, 3)])
def test_cifar_nets_take_the_projects_smaller_images(name, width, size, channels):
    net = build_classifier(name, channels, 5, width)
    assert net(torch.randn(2, channels, size, size)).shape == (2, 5)


# (name, width, classes): published parameter count. He et al. 2016 (ResNet-110 on CIFAR-10: 1.7M,
# ResNet-56: 0.85M, ResNet-20: 0.27M); Zagoruyko & Komodakis 2016 (WRN-40-2: 2.2M, WRN-16-2 and
# WRN-40-1: about 0.7M and 0.6M); the CIFAR-100 counts RepDistiller's nets are listed with (CRD,
# Tian et al. 2020): resnet110 1.73M, wrn_40_2 2.25M, vgg8 3.96M, MobileNetV2 (0.5x) 0.81M,
# ShuffleV2 1.35M; full-width MobileNetV2 on CIFAR-10 about 2.2-2.3M.
PUBLISHED = [
    ("resnet110", 16, 10, 1.7e6),
    ("resnet110", 16, 100, 1.73e6),
    ("resnet56", 16, 10, 0.85e6),
    ("resnet20", 16, 10, 0.27e6),
    ("wrn40", 32, 10, 2.2e6),
    ("wrn40", 32, 100, 2.25e6),
    ("wrn16", 32, 10, 0.7e6),
    ("wrn40", 16, 10, 0.57e6),
    ("vgg8", 64, 100, 3.96e6),
    ("mobilenetv2", 16, 100, 0.81e6),
    ("mobilenetv2", 32, 10, 2.25e6),
    ("shufflenetv2", 116, 100, 1.35e6),
]


@pytest.mark.parametrize("name, width, classes, published", PUBLISHED)
def test_parameter_counts_match_the_published_nets(name, width, classes, published):
    n = _count(build_classifier(name, 3, classes, width))
    assert abs(n - published) <= 0.03 * published, f"{name} width {width}: {n} parameters, published {published:.3g}"


def test_width_scales_each_net_as_documented():
    # resnet: channels of the first stage; wrn: 16 k; mobilenetv2: 32 x the multiplier; shufflenetv2: first stage
    assert build_classifier("resnet110", 3, 10, 32).stage_maps(torch.zeros(1, 3, 32, 32))[0].shape[1] == 32
    assert build_classifier("wrn40", 3, 10, 64).feature_dim == 256
    assert build_classifier("vgg8", 3, 10, 32).feature_dim == 256
    assert build_classifier("mobilenetv2", 3, 10, 64).feature_dim == 2560  # 1280 x the multiplier above 1
    assert build_classifier("shufflenetv2", 3, 10, 224).feature_dim == 2048  # the 2x net's last conv
    # the 110 layers of ResNet-110: stem + 3 stages x 18 blocks x 2 convs + the head
    convs = [m for m in build_classifier("resnet110", 3, 10, 16).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len([c for c in convs if c.kernel_size == (3, 3)]) + 1 == 110


def test_bad_widths_and_depths_are_clear_errors():
    raw = tiny_raw_params()
    raw["experiments"]["tiny"]["student"].update(net="shufflenetv2", width=115)
    with pytest.raises(ParamsError, match="student: width 115: shufflenetv2 splits every stage's channels in two"):
        validate(raw)
    raw["experiments"]["tiny"]["student"].update(width=116)
    raw["experiments"]["tiny"]["student"]["takd"] = {"net": "shufflenetv2", "width": 7}
    with pytest.raises(ParamsError, match="student.takd: width 7: shufflenetv2"):
        validate(raw)
    from pipeline.nets.wrn import WideResNet

    with pytest.raises(ValueError, match="WRN depth must be 6n \\+ 4"):
        WideResNet(3, 10, depth=41)


# the teacher / student pairs of the CIFAR profiles (and cifar100's TA): every method on one pair,
# the methods that match stage maps (FitNet, AT) on the others
WRN_MOBILE = (("wrn40", 32), ("mobilenetv2", 16))
RESNET_SHUFFLE = (("resnet110", 16), ("shufflenetv2", 116))
WRN_VGG = (("wrn40", 32), ("vgg8", 64))
CASES = [(*WRN_MOBILE, m) for m in sorted(set(METHODS) - {"takd"})] + [
    (*pair, m) for pair in (RESNET_SHUFFLE, WRN_VGG) for m in ("fitnet", "at")
]


@pytest.mark.parametrize("teacher_net, student_net, method", CASES)
def test_kd_methods_on_full_size_pairs(teacher_net, student_net, method):
    """The KD method builds on the pair's shapes, gives a finite loss and trains the student."""
    torch.manual_seed(0)
    teacher = build_classifier(teacher_net[0], 3, 10, teacher_net[1]).eval()
    student = build_classifier(student_net[0], 3, 10, student_net[1])
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    p = StudentParams()
    kd = build_method(method, method_section(p, method), student, teacher, x[:2], n_data=8)
    with torch.no_grad():
        t = teacher.forward_kd(x)
    loss = kd(student.forward_kd(x), t, y, torch.arange(4), torch.nn.functional.cross_entropy)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in teacher.parameters())
