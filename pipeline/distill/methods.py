"""Knowledge-distillation methods, chosen by name from `METHODS` (ALGORITHMS.md section 3b).

A method is a module (some carry learnable parts: FitNet's regressor, CRD's heads and memory
banks) called on one batch as method(s, t, y, idx, task_loss) -> the student's loss, where s and
t are the student's and the teacher's KDOut (output, stage maps, penultimate embedding), y the
training labels, idx each sample's index in the training set (real samples first, then the
fakes: CRD's memory bank) and task_loss(output, y) the student's own loss (cross-entropy, or MSE
/ L1 for regression). Every method but BLKD returns task_loss + weight * its term.

TAKD is BLKD from a teacher assistant (distill.fit.fit_assistant), so it is not a loss of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ParamsError
from pipeline.nets.backbone import Backbone, KDOut

Tensor = torch.Tensor
TaskLoss = Callable[[Tensor, Tensor], Tensor]


class Method(nn.Module):
    """The student's loss: task_loss(s.logits, y) + weight * term(s, t, idx)."""

    weight: float = 1.0
    per_process_state = False  # True: state that DDP's ranks would each keep apart (CRD's memory bank)

    def term(self, s: KDOut, t: KDOut, idx: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, s: KDOut, t: KDOut, y: Tensor, idx: Tensor, task_loss: TaskLoss) -> Tensor:
        return task_loss(s.logits, y) + self.weight * self.term(s, t, idx)


class BLKD(Method):
    """Hinton's KD: alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * task loss."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def forward(self, s: KDOut, t: KDOut, y: Tensor, idx: Tensor, task_loss: TaskLoss) -> Tensor:
        T = self.temperature
        kl = F.kl_div(
            F.log_softmax(s.logits / T, 1), F.log_softmax(t.logits / T, 1), log_target=True, reduction="batchmean"
        )
        return self.alpha * T * T * kl + (1 - self.alpha) * task_loss(s.logits, y)


def _match_size(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the larger of two maps (N, C, H, W) to the other's spatial size."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-1] > b.shape[-1]:
        return F.adaptive_avg_pool2d(a, (b.shape[-2], b.shape[-1])), b
    return a, F.adaptive_avg_pool2d(b, (a.shape[-2], a.shape[-1]))


class FitNet(Method):
    """Hint loss: mean((r(F_s) - F_t)^2) at one stage (`stage`, counted as a Python index into each
    net's stage maps), r a learned 1x1 convolution from the student's channels to the teacher's
    followed by batch norm and ReLU (RepDistiller's ConvReg; a bare conv let the weight-100 hint
    swamp the CE and stall a CNN student at chance on chair_models), a linear map for non-spatial
    maps; the larger map is average-pooled to the other's size."""

    def __init__(self, s_channels: int, t_channels: int, *, spatial: bool, stage: int = -2, weight: float = 100.0):
        super().__init__()
        self.stage, self.weight = stage, weight
        if spatial:  # RepDistiller's ConvReg: a 1x1 conv, batch norm and ReLU (the teacher's maps are post-ReLU)
            self.regressor = nn.Sequential(nn.Conv2d(s_channels, t_channels, 1), nn.BatchNorm2d(t_channels), nn.ReLU())
        else:
            self.regressor = nn.Sequential(nn.Linear(s_channels, t_channels), nn.BatchNorm1d(t_channels), nn.ReLU())

    def term(self, s: KDOut, t: KDOut, idx: Tensor) -> Tensor:
        hint, target = _match_size(self.regressor(s.maps[self.stage]), t.maps[self.stage])
        return F.mse_loss(hint, target)


def attention_map(f: Tensor) -> Tensor:
    """a(F) = normalise(vec(mean over channels of F^2)): (N, C, H, W) -> (N, H * W), unit L2 norm."""
    if f.dim() != 4:
        raise ParamsError(f"student.methods: at needs spatial feature maps (N, C, H, W), got shape {tuple(f.shape)}")
    return F.normalize(f.pow(2).mean(1).flatten(1), dim=1)


class AT(Method):
    """Attention transfer: sum over matched stages of mean((a(F_s) - a(F_t))^2), weight beta / 2
    (beta = 1000). Stages are matched from the last one back, as many as the shallower net has;
    the larger map is pooled to the other's size before its attention map is taken."""

    def __init__(self, weight: float = 500.0) -> None:
        super().__init__()
        self.weight = weight

    def term(self, s: KDOut, t: KDOut, idx: Tensor) -> Tensor:
        pairs = list(zip(reversed(s.maps), reversed(t.maps), strict=False))
        return sum(
            ((attention_map(a) - attention_map(b)).pow(2).mean() for a, b in (_match_size(*p) for p in pairs)),
            s.logits.new_zeros(()),
        )


def _pairwise_distance(e: Tensor) -> Tensor:
    """(N, N) Euclidean distances between the rows of e, divided by their mean over i != j."""
    d = torch.cdist(e, e)
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d / d[off].mean().clamp(min=1e-12)


def _angles(e: Tensor) -> Tensor:
    """(N, N, N): cos of the angle at j between e_i and e_k, i.e. <unit(e_i - e_j), unit(e_k - e_j)>."""
    v = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), dim=2)  # v[j, i] = unit(e_i - e_j)
    return torch.bmm(v, v.transpose(1, 2))


class RKD(Method):
    """Relational KD on the penultimate embeddings of a batch: distance * Huber(psi_D(s), psi_D(t))
    + angle * Huber(psi_A(s), psi_A(t)), psi_D the pairwise distances over their mean, psi_A the
    cosines of all triplet angles (weights 25 and 50)."""

    def __init__(self, distance: float = 25.0, angle: float = 50.0, weight: float = 1.0) -> None:
        super().__init__()
        self.distance, self.angle, self.weight = distance, angle, weight

    def term(self, s: KDOut, t: KDOut, idx: Tensor) -> Tensor:
        es, et = s.embedding.flatten(1), t.embedding.flatten(1).detach()
        d = F.smooth_l1_loss(_pairwise_distance(es), _pairwise_distance(et))
        a = F.smooth_l1_loss(_angles(es), _angles(et))
        return self.distance * d + self.angle * a


class CRD(Method):
    """Contrastive representation distillation. Both penultimate embeddings go through linear heads
    to `dim` and are L2-normalised; a memory bank keeps one embedding per training sample for each
    side (momentum update). For each sample, its own entry in the other side's bank is the positive
    and `negatives` random entries the negatives; with h(v, u) = exp(v.u / T) / Z (Z fixed on the
    first batch, so that h averages 1 / n_data), the NCE loss is
    -log(h+ / (h+ + K / n)) - sum_k log((K / n) / (h_k + K / n)), summed over both sides."""

    per_process_state = True

    def __init__(
        self,
        s_dim: int,
        t_dim: int,
        n_data: int,
        *,
        dim: int = 128,
        negatives: int = 4096,
        temperature: float = 0.07,
        momentum: float = 0.5,
        weight: float = 0.8,
    ) -> None:
        super().__init__()
        self.head_s, self.head_t = nn.Linear(s_dim, dim), nn.Linear(t_dim, dim)
        self.n_data, self.negatives = n_data, min(negatives, max(n_data - 1, 1))
        self.temperature, self.momentum, self.weight = temperature, momentum, weight
        self.register_buffer("bank_s", F.normalize(torch.randn(n_data, dim), dim=1))
        self.register_buffer("bank_t", F.normalize(torch.randn(n_data, dim), dim=1))
        self.register_buffer("z", torch.full((2,), -1.0))  # Z of each side, fixed on the first batch
        self.bank_s: Tensor
        self.bank_t: Tensor
        self.z: Tensor

    def nce(self, v: Tensor, bank: Tensor, idx: Tensor, neg: Tensor, side: int) -> Tensor:
        """NCE of anchors v (N, d) against bank rows idx (positives) and neg (N, K) (negatives)."""
        rows = torch.cat([idx.unsqueeze(1), neg], 1)  # (N, 1 + K)
        # one product with the whole bank, then the K + 1 entries of each row: far cheaper than
        # gathering (N, 1 + K, d) bank rows when K is in the thousands
        h = torch.exp((v @ bank.T).gather(1, rows) / self.temperature)
        if self.z[side] < 0:
            self.z[side] = h.mean().detach() * self.n_data
        h = h / self.z[side].item()
        noise = self.negatives / self.n_data
        log_pos = torch.log(h[:, 0] / (h[:, 0] + noise))
        log_neg = torch.log(noise / (h[:, 1:] + noise)).sum(1)
        return -(log_pos + log_neg).mean()

    def term(self, s: KDOut, t: KDOut, idx: Tensor) -> Tensor:
        vs = F.normalize(self.head_s(s.embedding.flatten(1)), dim=1)
        vt = F.normalize(self.head_t(t.embedding.flatten(1).detach()), dim=1)
        neg = torch.randint(0, self.n_data, (len(idx), self.negatives), device=idx.device)
        loss = self.nce(vt, self.bank_s, idx, neg, 0) + self.nce(vs, self.bank_t, idx, neg, 1)
        with torch.no_grad():  # the banks follow the embeddings with momentum (out of place: the loss saved them)
            for name, v in (("bank_s", vs), ("bank_t", vt)):
                bank = getattr(self, name)
                new = F.normalize(self.momentum * bank[idx] + (1 - self.momentum) * v.detach(), dim=1)
                setattr(self, name, bank.index_copy(0, idx, new))
        return loss


# name -> (builds the method from its params section, the student, the teacher, a probe batch and
# the training-set size; the tasks it applies to)
Builder = Callable[[Any, Backbone, Backbone, Tensor, int], Method]


def _probe(student: Backbone, teacher: Backbone, x: Tensor) -> tuple[KDOut, KDOut]:
    """Both nets' outputs on a few samples, in eval mode (no batch-norm statistics move)."""
    was = student.training
    student.eval()
    teacher.eval()
    with torch.no_grad():
        out = student.forward_kd(x), teacher.forward_kd(x)
    student.train(was)
    return out


def _fitnet(p: Any, student: Backbone, teacher: Backbone, x: Tensor, n_data: int) -> Method:
    s, t = _probe(student, teacher, x[:2])
    for who, out in (("student", s), ("teacher", t)):
        if not -len(out.maps) <= p.stage < len(out.maps):
            raise ParamsError(f"student.fitnet.stage {p.stage}: the {who} net has {len(out.maps)} stage(s)")
    fs, ft = s.maps[p.stage], t.maps[p.stage]
    if (fs.dim() == 4) != (ft.dim() == 4):
        raise ParamsError("student.fitnet: the student's and the teacher's maps must both be spatial or both not")
    return FitNet(fs.shape[1], ft.shape[1], spatial=fs.dim() == 4, stage=p.stage, weight=p.weight)


def _crd(p: Any, student: Backbone, teacher: Backbone, x: Tensor, n_data: int) -> Method:
    return CRD(
        student.feature_dim,
        teacher.feature_dim,
        n_data,
        dim=p.dim,
        negatives=p.negatives,
        temperature=p.temperature,
        momentum=p.momentum,
        weight=p.weight,
    )


# why a method does not apply to regression (a scalar output, labels that are not classes)
NOT_FOR_REGRESSION = {
    "blkd": "it distils class probabilities, which a regressor does not output",
    "takd": "it is BLKD through an assistant",
    "crd": "it treats every other sample as a negative, also those at nearly the same label",
}

METHODS: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "blkd": (lambda p, s, t, x, n: BLKD(p.temperature, p.alpha), ("classification",)),
    "fitnet": (_fitnet, ("classification", "regression")),
    "at": (lambda p, s, t, x, n: AT(p.weight), ("classification", "regression")),
    "rkd": (lambda p, s, t, x, n: RKD(p.distance, p.angle, p.weight), ("classification", "regression")),
    "crd": (_crd, ("classification",)),
    "takd": (lambda p, s, t, x, n: BLKD(p.temperature, p.alpha), ("classification",)),  # from the assistant
}


def build_method(name: str, p: Any, student: Backbone, teacher: Backbone, x: Tensor, n_data: int) -> Method:
    """The method `name` with its params section p, fitted to the two nets' shapes (a probe batch x)."""
    return METHODS[name][0](p, student, teacher, x, n_data)
