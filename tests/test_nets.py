import pytest
import torch
from torch import nn

from pipeline.errors import ParamsError
from pipeline.gan.ema import ema_update, standing_stats
from pipeline.nets import Discriminator, Generator, build_classifier


@pytest.mark.parametrize("image_size, channels", [(8, 1), (16, 1), (32, 3), (64, 3)])
def test_gan_shapes(image_size, channels):
    G = Generator(z_dim=8, image_size=image_size, channels=channels, width=8, num_classes=4)
    D = Discriminator(image_size=image_size, channels=channels, width=8, num_classes=4)
    y = torch.tensor([0, 1, 2, 3])
    x = G(torch.randn(4, 8), y)
    assert x.shape == (4, channels, image_size, image_size) and x.abs().max() <= 1
    assert D(x, y).shape == (4,)


def test_projection_discriminator_uses_the_label():
    torch.manual_seed(0)
    D = Discriminator(image_size=8, channels=1, width=8, num_classes=3)
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([1, 1])))


@pytest.mark.parametrize("label_input", ["nli", "ili"])
def test_continuous_label_inputs_condition_g_and_d(label_input):
    torch.manual_seed(0)
    G = Generator(8, image_size=8, channels=1, width=8, label_input=label_input)
    D = Discriminator(image_size=8, channels=1, width=8, label_input=label_input)
    if label_input == "ili":  # the frozen y2h is shared in value, not trained
        assert not any(p.requires_grad for p in G.embed.parameters())
        assert not any(p.requires_grad for p in D.y2h.parameters())
    G.eval()
    z = torch.randn(1, 8).repeat(2, 1)
    y = torch.tensor([0.1, 0.9])
    x = G(z, y)
    assert x.shape == (2, 1, 8, 8) and not torch.allclose(x[0], x[1])  # same z, other label -> other image
    xx = x[:1].repeat(2, 1, 1, 1)
    assert not torch.allclose(*D(xx, y).unbind())


def test_nli_generator_adds_the_label_to_the_first_layer():
    torch.manual_seed(0)
    G = Generator(4, image_size=8, channels=1, width=8, label_input="nli").eval()
    seen = []
    G.dense.register_forward_hook(lambda m, i, o: seen.append(o))
    G.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    G(torch.randn(1, 4), torch.tensor([0.7]))
    assert torch.allclose(seen[1].flatten(), seen[0].flatten() + 0.7)


def _shapes(module: nn.Module, kind: type[nn.Module]) -> list[tuple[int, int]]:
    return [
        (m.in_channels, m.out_channels) for m in module.modules() if isinstance(m, kind) and m.kernel_size == (3, 3)
    ]


@pytest.mark.parametrize("label_input", ["nli", "ili", "class"])
def test_64x64_nets_have_the_ccgan_reference_widths(label_input):
    """G and D of the CcGAN reference code at 64x64 (width 64, z 256): G dense -> 4x4x1024, up-sampling
    blocks 1024 -> 512 -> 256 -> 128 -> 64; D blocks 3 -> 64 -> 128 -> 256 -> 512 and, with the ccgan head,
    512 -> 1024 at 4x4, flattened (16,384 features) into the linear and projection terms."""
    from pipeline.nets import build_gan

    cond = {"label_input": label_input, "num_classes": 150 if label_input == "class" else 0}
    G, D = build_gan("sngan", data_shape=(3, 64, 64), z_dim=256, g_width=64, d_width=64, d_head="ccgan", **cond)
    assert G.dense.in_features == 256 and G.dense.out_features == 4 * 4 * 1024
    assert [(b.conv1.in_channels, b.conv1.out_channels) for b in G.blocks] == [
        (1024, 512),
        (512, 256),
        (256, 128),
        (128, 64),
    ]
    convs = [(c_in, c_out) for c_in, c_out in _shapes(D, nn.Conv2d)]
    assert convs[::2] == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]  # conv1 of each block
    assert D.feature_dim == 1024 * 4 * 4 and D.linear.in_features == 1024 * 4 * 4
    y = torch.tensor([0, 149]) if label_input == "class" else torch.tensor([0.2, 0.8])
    x = G(torch.randn(2, 256), y)
    assert x.shape == (2, 3, 64, 64) and D(x, y).shape == (2,)
    _, D_sum = build_gan("sngan", data_shape=(3, 64, 64), z_dim=256, g_width=64, d_width=64, **cond)
    assert D_sum.feature_dim == 512 and len(D_sum.blocks) == 4  # the default: SNGAN's sum pooling, no extra block


def test_d_head_is_checked():
    from pipeline.nets import build_gan

    with pytest.raises(ValueError, match="unknown discriminator head 'max'"):
        Discriminator(image_size=8, channels=1, width=8, num_classes=2, head="max")
    with pytest.raises(ParamsError, match="gan.d_head 'ccgan' is for image discriminators"):
        build_gan("mlp", data_shape=(2,), z_dim=2, g_width=8, d_width=8, label_input="nli", d_head="ccgan")


def test_bad_image_size():
    with pytest.raises(ValueError, match="4 \\* 2\\^k"):
        Generator(8, image_size=12, channels=1, num_classes=2)


@pytest.mark.parametrize("name", ["resnet", "cnn", "vgg11", "resnet18", "resnet20"])
def test_classifier_interface(name):
    model = build_classifier(name, in_channels=1, num_classes=5, width=4)
    x = torch.randn(3, 1, 16, 16)
    assert model(x).shape == (3, 5)
    assert model.features(x).shape == (3, model.feature_dim)


def test_unknown_net_is_a_params_error():
    known = (
        "cnn, mlp, mobilenetv2, resnet, resnet110, resnet14, resnet18, resnet20, resnet32, resnet34, resnet56, "
        "shufflenetv2, vgg11, vgg13, vgg16, vgg19, vgg8, wrn16, wrn40"
    )
    with pytest.raises(ParamsError, match=f"unknown classifier net 'vgg' \\(known: {known}\\)"):
        build_classifier("vgg", 1, 2, 4)


def test_ema_update_by_hand():
    ema, model = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.fill_(3.0)
    ema_update(ema, model, decay=0.75)
    assert ema.weight.item() == pytest.approx(0.75 * 1 + 0.25 * 3)


def test_standing_stats_average_over_batches():
    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(1)

        def forward(self, z, y):
            return self.bn(z[:, :1] + 5.0)

    g = G().eval()
    torch.manual_seed(0)
    standing_stats(g, z_dim=1, labels=lambda n: torch.randint(0, 2, (n,)), n_batches=50, batch_size=256)
    assert g.bn.running_mean.item() == pytest.approx(5.0, abs=0.05)  # cumulative mean, not momentum-weighted
    assert g.bn.running_var.item() == pytest.approx(1.0, abs=0.1)
    assert g.bn.momentum == 0.1 and not g.training  # settings restored


def test_resnet14_has_two_blocks_per_stage():
    small, large = build_classifier("resnet", 1, 5, 8), build_classifier("resnet14", 1, 5, 8)
    assert len(small.body) == 3 and len(large.body) == 6
    assert large(torch.zeros(2, 1, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize(
    "name, convs, params_m",
    [("vgg11", 8, 10.5), ("vgg16", 13, 16.0), ("vgg19", 16, 21.4), ("resnet18", 17, 11.2), ("resnet34", 33, 21.3)],
)
def test_regression_nets_at_64x64_have_the_reference_depth_and_size(name, convs, params_m):
    """The reference code's 64x64 regressors at width 64: VGG-n has n - 3 convs (then its 3 linear
    layers), ResNet-n n - 1 (plus 1x1 shortcuts); the VGG maps end at 4x4 and its head flattens
    the pooled 2x2 map (2048 values), the ResNet maps at 4x4 with 512 channels."""
    model = build_classifier(name, in_channels=3, num_classes=1, width=64)
    n_convs = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert n_convs == convs
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.1)
    out = model.forward_kd(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 1) and out.embedding.shape == (2, 512)
    assert out.maps[-1].shape[1:] == (512, 4, 4)
    if name.startswith("vgg"):
        assert [m.shape[-1] for m in out.maps] == [64, 32, 16, 8, 4] and model.fc[0].in_features == 2048


def test_regression_nets_register_once():
    from functools import partial

    from pipeline.nets import CLASSIFIERS
    from pipeline.nets.classifiers import ResNet
    from pipeline.nets.regressors import VGG, register

    registry = {"resnet20": partial(ResNet, blocks=3)}  # the same net under the same name: kept
    register(registry)
    assert registry["resnet20"].keywords == {"blocks": 3} and {"vgg16", "resnet34"} <= set(registry)
    assert {"vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet20"} <= set(CLASSIFIERS)
    with pytest.raises(RuntimeError, match="'vgg16' is registered twice"):
        register({"vgg16": partial(VGG, depth=11)})
    with pytest.raises(ValueError, match="VGG depth 12"):
        VGG(3, 1, depth=12)


def test_point_mlps_take_the_reference_depths():
    """The CcGAN reference's circle nets: G with 6 hidden layers, D with 5 (d_depth); D follows G unset."""
    from torch import nn

    from pipeline.nets import build_gan

    def hidden(net):
        return sum(isinstance(m, nn.Linear) for m in net.modules()) - 1  # the output layer is not hidden

    G, D = build_gan("mlp", data_shape=(2,), z_dim=2, g_width=16, d_width=16, label_input="nli", depth=6, d_depth=5)
    assert (hidden(G), hidden(D)) == (6, 5)
    G, D = build_gan("mlp", data_shape=(2,), z_dim=2, g_width=16, d_width=16, label_input="nli", depth=3)
    assert (hidden(G), hidden(D)) == (3, 3)
