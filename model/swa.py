"""Weight averaging (SWA, Izmailov et al. 2018) and the averaged network's BatchNorm statistics."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from model.batches import CanvasBatches
from model.net import DigitCNN

BATCHNORM_BATCHES = 100
"""Training batches (the first ones) run through the averaged network to recompute its BatchNorm
statistics."""


def finish(swa: AveragedModel, model: DigitCNN, data: CanvasBatches) -> DigitCNN:
    """The averaged network: add ``model``'s weights once more, then recompute BatchNorm statistics.

    Averaged weights do not match the running statistics of any one network, so
    :func:`torch.optim.swa_utils.update_bn` resets every BatchNorm layer and recomputes it on the first
    :data:`BATCHNORM_BATCHES` training batches (channels-last, as trained).

    Args:
        swa: The running average (its ``module`` is changed in place and returned).
        model: The network being trained, whose current weights are added as the last snapshot.
        data: The training batches.

    Returns:
        ``swa.module``, a :class:`DigitCNN` in training mode.
    """
    swa.update_parameters(model)
    batches = [data[i][0].contiguous(memory_format=torch.channels_last) for i in range(BATCHNORM_BATCHES)]
    averaged = swa.module
    assert isinstance(averaged, DigitCNN)
    update_bn(batches, swa)
    return averaged
