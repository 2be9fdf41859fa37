"""The quickstart DCGAN (28 px digits) trained the ordinary PyTorch way, for time to quality.

The same model as `configs/quickstart.py` builds in Flax (z -> dense to 7x7 x
2f -> batch norm, ReLU -> 4x4 stride-2 transposed conv to f -> batch norm,
ReLU -> transposed conv to the image -> tanh; D mirrors it with LeakyReLU 0.2,
no norm on its first layer, a dense logit), the same initialisation (weights
N(0, 0.02), batch-norm scale 1 and shift 0, PyTorch's batch-norm momentum and
epsilon, as ours), loss (non-saturating BCE; D on the real and the generated
batch in two passes), optimiser (Adam, lr 2e-4, betas (0.5, 0.999)) and batch
size, fed by a `DataLoader` over the same 5,000 offline digits. Nothing here
is tuned for speed beyond what a PyTorch user writes: that is the point.
"""

import time

import numpy as np
import torch
from torch import nn


def _init(module):
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)


class Generator(nn.Module):
  """z [B, latent_dim] -> images [B, 1, 28, 28] in (-1, 1)."""

  def __init__(self, latent_dim, features):
    super().__init__()
    self.width = 2 * features
    self.project = nn.Linear(latent_dim, 7 * 7 * self.width, bias=False)
    self.main = nn.Sequential(
        nn.BatchNorm2d(self.width), nn.ReLU(True),
        nn.ConvTranspose2d(self.width, features, 4, 2, 1, bias=False),
        nn.BatchNorm2d(features), nn.ReLU(True),
        nn.ConvTranspose2d(features, 1, 4, 2, 1, bias=False), nn.Tanh())
    self.apply(_init)

  def forward(self, z):
    return self.main(self.project(z).view(-1, self.width, 7, 7))


class Discriminator(nn.Module):
  """images [B, 1, 28, 28] -> logits [B]."""

  def __init__(self, features):
    super().__init__()
    self.main = nn.Sequential(
        nn.Conv2d(1, features, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(features, 2 * features, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * features), nn.LeakyReLU(0.2, True), nn.Flatten(),
        nn.Linear(7 * 7 * 2 * features, 1, bias=False))
    self.apply(_init)

  def forward(self, x):
    return self.main(x).view(-1)


def train(images, config, checkpoint_steps, seed=0, threads=None):
  """Trains on uint8 [N, 28, 28, 1] images; yields (step, train seconds, generate) at checkpoints.

  `generate(z)` maps numpy z [n, latent_dim] to numpy NHWC images in [-1, 1]
  (G in eval mode). Training seconds exclude the time the caller spends
  between yields (scoring).
  """
  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(seed)
  m = config.model
  generator, discriminator = Generator(m.latent_dim, m.g_features), Discriminator(m.d_features)
  g_opt = torch.optim.Adam(generator.parameters(), lr=config.optim.g_lr,
                           betas=(config.optim.g_b1, config.optim.g_b2))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.optim.d_lr,
                           betas=(config.optim.d_b1, config.optim.d_b2))
  data = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data),
                                       batch_size=config.batch_size, shuffle=True,
                                       drop_last=True)
  bce = nn.BCEWithLogitsLoss()

  def generate(z):
    generator.eval()
    with torch.no_grad():
      out = generator(torch.from_numpy(np.asarray(z, np.float32))).permute(0, 2, 3, 1).numpy()
    generator.train()
    return out

  step, seconds, last = 0, 0.0, max(checkpoint_steps)
  start = time.perf_counter()
  while step < last:
    for (real,) in loader:
      z = torch.randn(real.shape[0], m.latent_dim)
      fake = generator(z)
      real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
      d_loss = (bce(real_logits, torch.ones_like(real_logits)) +
                bce(fake_logits, torch.zeros_like(fake_logits)))
      d_opt.zero_grad()
      d_loss.backward()
      d_opt.step()
      g_logits = discriminator(generator(torch.randn(real.shape[0], m.latent_dim)))
      g_loss = bce(g_logits, torch.ones_like(g_logits))
      g_opt.zero_grad()
      g_loss.backward()
      g_opt.step()
      step += 1
      if step in checkpoint_steps:
        seconds += time.perf_counter() - start
        yield step, seconds, generate
        start = time.perf_counter()
      if step >= last:
        return
