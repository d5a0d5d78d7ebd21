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


def test_bad_image_size():
    with pytest.raises(ValueError, match="4 \\* 2\\^k"):
        Generator(8, image_size=12, channels=1, num_classes=2)


@pytest.mark.parametrize("name", ["resnet", "cnn"])
def test_classifier_interface(name):
    model = build_classifier(name, in_channels=1, num_classes=5, width=4)
    x = torch.randn(3, 1, 16, 16)
    assert model(x).shape == (3, 5)
    assert model.features(x).shape == (3, model.feature_dim)


def test_unknown_net_is_a_params_error():
    known = (
        "cnn, mlp, mobilenetv2, resnet, resnet110, resnet14, resnet20, resnet32, resnet56, shufflenetv2, vgg8, "
        "wrn16, wrn40"
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
