"""PyTorch reference models: the classic DCGAN 64 px pair and Miyato et al.'s standard CNN 32 px."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _dcgan_init(module):
  """DCGAN initialisation: convs N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0."""
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
  """The PyTorch DCGAN example generator: z [B, nz, 1, 1] -> [B, nc, 64, 64] in (-1, 1)."""

  def __init__(self, nz=100, ngf=64, nc=3):
    super().__init__()
    self.main = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh())
    self.apply(_dcgan_init)

  def forward(self, z):
    return self.main(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
  """The PyTorch DCGAN example discriminator, returning logits [B] (no sigmoid)."""

  def __init__(self, ndf=64, nc=3):
    super().__init__()
    self.main = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))
    self.apply(_dcgan_init)

  def forward(self, x):
    return self.main(x).view(-1)


class StandardCNNGenerator(nn.Module):
  """Miyato et al. 2018, Table 3(a): z [B, 128] -> [B, nc, 32, 32] in (-1, 1).

  Linear to 4x4x512 + BN + ReLU, three deconv 4x4/2 (256, 128, 64) + BN + ReLU,
  conv 3x3/1 to nc + tanh. Every layer has a bias, as in Miyato et al.'s code
  and dcgan_jax.models.networks.StandardCNNGenerator.
  """

  def __init__(self, nz=128, nc=3, width=512):
    super().__init__()
    self.width = width
    self.fc = nn.Linear(nz, 4 * 4 * width)
    self.bn0 = nn.BatchNorm2d(width)
    self.main = nn.Sequential(
        nn.ConvTranspose2d(width, 256, 4, 2, 1), nn.BatchNorm2d(256), nn.ReLU(True),
        nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(True),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(True),
        nn.Conv2d(64, nc, 3, 1, 1), nn.Tanh())
    self.apply(_dcgan_init)

  def forward(self, z):
    x = self.fc(z.view(z.shape[0], -1)).view(-1, self.width, 4, 4)
    return self.main(torch.relu(self.bn0(x)))


class StandardCNNDiscriminator(nn.Module):
  """Miyato et al. 2018, Table 3(b) with spectral norm on every layer; logits [B].

  conv3x3 64, conv4x4/2 64, conv3x3 128, conv4x4/2 128, conv3x3 256,
  conv4x4/2 256, conv3x3 512 (all with LeakyReLU 0.1), linear -> 1.
  """

  def __init__(self, nc=3, slope=0.1):
    super().__init__()
    chans = [(nc, 64, 3, 1), (64, 64, 4, 2), (64, 128, 3, 1), (128, 128, 4, 2),
             (128, 256, 3, 1), (256, 256, 4, 2), (256, 512, 3, 1)]
    layers = []
    for cin, cout, k, s in chans:
      conv = nn.Conv2d(cin, cout, k, s, 1)
      _dcgan_init(conv)
      layers += [spectral_norm(conv), nn.LeakyReLU(slope, True)]
    self.main = nn.Sequential(*layers)
    fc = nn.Linear(4 * 4 * 512, 1)
    _dcgan_init(fc)
    self.fc = spectral_norm(fc)

  def forward(self, x):
    return self.fc(self.main(x).flatten(1)).view(-1)


ARCHS = {
    # name: (generator ctor, discriminator ctor, latent dim, image size)
    'dcgan64': (DCGANGenerator, DCGANDiscriminator, 100, 64),
    'standard_cnn32': (StandardCNNGenerator, StandardCNNDiscriminator, 128, 32),
}


def create_models(arch, num_channels=3):
  """Returns (generator, discriminator, latent_dim, image_size) of a reference arch."""
  if arch not in ARCHS:
    raise ValueError(f'arch must be one of {sorted(ARCHS)}, got {arch!r}.')
  g_cls, d_cls, nz, size = ARCHS[arch]
  return g_cls(nz=nz, nc=num_channels), d_cls(nc=num_channels), nz, size
