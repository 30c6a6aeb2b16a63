"""Test helpers: the small training config the engine tests share."""

from aejax import Config

# Small and fast: one hidden layer, one device unless a test says otherwise.
SMALL = Config(
    data="digits",
    hidden=(64,),
    latent_dim=8,
    epochs=3,
    batch_size=64,
    lr=3e-3,
    warmup_steps=5,
    progress=False,
    devices=1,
    checkpoint_every=1,  # the tests interrupt and resume at epoch boundaries
)
