"""Config of the pretraining comparison: Hinton & Salakhutdinov's 784-1000-500-250-30 network
trained end to end, after greedy layer-wise pretraining, and after denoising pretraining.

Command: ``python -m experiments.pretraining`` (``--data tfds:mnist`` where it is prepared).
"""

from __future__ import annotations

import aejax
from experiments.configs import hinton2006

# Hinton & Salakhutdinov 2006 pretrain with RBMs; Vincent et al. 2010 (JMLR 11:3371) stack
# denoising autoencoders instead, with masking noise of 10-40% on every layer's input.
VARIANTS = {
    "ae": {"model": "ae"},
    "stacked": {"model": "stacked_ae", "pretrain_corruption": "none"},
    "sdae": {"model": "stacked_ae", "pretrain_corruption": "masking:0.25"},
}


def get_config(data: str = "mnist-lite", variant: str = "stacked") -> aejax.Config:
    """The run of one variant: hinton2006's config, the same fine-tuning for every one.

    The end-to-end phase is exactly ``experiments.hinton2006``'s (Adam at lr 3e-4, cosine,
    100 epochs, best validation epoch kept), so the variants differ only in where that
    phase starts: the seed's random initialization (``ae``) or the layer-wise pretrained
    parameters (``stacked``: plain shallow autoencoders; ``sdae``: denoising ones). Each
    of the four layers pretrains for 10 epochs at lr 1e-3 (a shallow net is not the deep
    one that overfits at that rate).
    """
    config = hinton2006.get_config(data).replace(**VARIANTS[variant])
    if config.model == "stacked_ae":
        config = config.replace(pretrain_epochs=10, pretrain_lr=1e-3)
    return config
