"""The PyTorch reference train step (same algorithm as dcgan_jax.training.train) and its timer.

One step: D update (Adam) on a real batch and a fake batch from fresh z
(detached), then G update (Adam) with fresh z and the non-saturating loss
(BCE-with-logits on D(G(z)) vs 1). D's parameters are frozen during the G
update so that torch, like JAX, does not compute D's weight gradients there.
"""

import statistics
import time

import torch
from torch.nn import functional as F

from dcgan_jax.torch_reference import models


class TorchStep:
  """A reference GAN train step on synthetic data; call it to run one step."""

  def __init__(self, arch, batch_size, threads=None, channels_last=False, seed=0,
               lr=2e-4, betas=(0.5, 0.999)):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    self.generator, self.discriminator, self.latent_dim, size = models.create_models(arch)
    self.batch_size = batch_size
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.generator.to(memory_format=self.memory_format)
    self.discriminator.to(memory_format=self.memory_format)
    self.g_opt = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
    self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
    self.real = (torch.rand(batch_size, 3, size, size) * 2 - 1).contiguous(
        memory_format=self.memory_format)
    self.ones = torch.ones(batch_size)
    self.zeros = torch.zeros(batch_size)

  def __call__(self):
    g, d = self.generator, self.discriminator
    # Discriminator update on a real and a (detached) fake batch.
    fake = g(torch.randn(self.batch_size, self.latent_dim))
    d_loss = (F.binary_cross_entropy_with_logits(d(self.real), self.ones)
              + F.binary_cross_entropy_with_logits(d(fake.detach()), self.zeros))
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    # Generator update with fresh z, non-saturating loss.
    d.requires_grad_(False)
    fake = g(torch.randn(self.batch_size, self.latent_dim))
    g_loss = F.binary_cross_entropy_with_logits(d(fake), self.ones)
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    d.requires_grad_(True)
    return d_loss.item(), g_loss.item()


def time_steps(step_fn, batch_size, steps, repeats, warmup=2):
  """Times `step_fn()` (which must block until done); medians over repeats.

  Returns dict(images_per_sec (median), min, max (images/s of the slowest and
  fastest repeat), step_ms (median), repeats_images_per_sec).
  """
  for _ in range(warmup):
    step_fn()
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(steps):
      step_fn()
    rates.append(batch_size * steps / (time.perf_counter() - t0))
  median = statistics.median(rates)
  return dict(images_per_sec=median, min=min(rates), max=max(rates),
              step_ms=1e3 * batch_size / median, repeats_images_per_sec=rates)


def time_torch_step(arch, batch_size=64, steps=20, repeats=3, threads=None,
                    channels_last=False):
  """Images/s of the reference step for arch 'dcgan64' | 'standard_cnn32'."""
  step = TorchStep(arch, batch_size, threads=threads, channels_last=channels_last)
  result = time_steps(step, batch_size, steps, repeats)
  result.update(arch=arch, batch_size=batch_size, threads=torch.get_num_threads(),
                torch_version=torch.__version__, channels_last=channels_last)
  return result
