"""Helpers of the analysis tests: tiny models on the models.py contract, event writers."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

LATENT_DIM = 8
IMAGE_SIZE = 8


class TinyGenerator(nn.Module):
  """z [B, D] -> images [B, 8, 8, 1] in [-1, 1], with batch norm like the real G."""

  @nn.compact
  def __call__(self, z, train=False):
    x = nn.Dense(IMAGE_SIZE * IMAGE_SIZE)(z)
    x = nn.BatchNorm(use_running_average=not train)(x)
    return jnp.tanh(x).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)


class TinyDiscriminator(nn.Module):
  """Two stride-2 convs that sow their post-activation maps from the top module."""

  @nn.compact
  def __call__(self, x, train=False):
    for width in (4, 6):
      x = nn.Conv(width, (3, 3), strides=2)(x)
      x = nn.leaky_relu(x, 0.2)
      self.sow('intermediates', 'features', x)
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


class Block(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    x = nn.leaky_relu(nn.Dense(self.width)(x), 0.2)
    self.sow('intermediates', 'features', x)
    return x


class ManyBlockDiscriminator(nn.Module):
  """Twelve sub-modules that each sow (so 'Block_10' sorts before 'Block_2')."""

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape(x.shape[0], -1)
    for i in range(12):
      x = Block(width=i + 1)(x)
    return x.mean(axis=-1)


def write_clu_run(workdir, scalars, images=False):
  """Writes {step: {name: value}} the way the train loop does, with clu."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(str(workdir))
  for step, values in scalars.items():
    writer.write_scalars(step, values)
    if images:
      writer.write_images(step, {'samples': np.zeros((1, 4, 4, 3), np.uint8)})
  writer.flush()
  writer.close()


def write_legacy_run(workdir, tag, points, wall_time=0.0):
  """Writes old-style simple_value scalars with tensorboard's own writer (no TF)."""
  from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top
  from tensorboard.summary.writer import event_file_writer  # pylint: disable=g-import-not-at-top
  writer = event_file_writer.EventFileWriter(str(workdir))
  for step, value in points:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    writer.add_event(event_pb2.Event(step=step, wall_time=wall_time + step, summary=summary))
  writer.close()
