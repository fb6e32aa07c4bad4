"""Augmentation inside the ``tf.data`` pipeline: SpecAugment masks and mixup.

Every random draw comes from stateless ops seeded per example, so an example is augmented
alike whatever worker, batch or thread handles it, and a resumed run repeats the same epochs.
TensorFlow is imported inside the functions (they only run while a pipeline is built).
"""

from __future__ import annotations

__all__ = ["mix_batch", "mixup_share", "spec_augment_masks"]


def mixup_share(seed, *, alpha: float):
    """Mixup's weight of an example in its blend, drawn from Beta(alpha, alpha) and kept >= 0.5."""
    import tensorflow as tf

    # One draw per example from its own seed: reproducible whatever the batch composition.
    # Drawn per example, rather than by a map over the batch (~20 % of an epoch).
    gammas = [
        tf.random.stateless_gamma(
            [], seed=tf.random.experimental.stateless_fold_in(seed, 3 + k), alpha=alpha
        )
        for k in range(2)
    ]
    lam = gammas[0] / (gammas[0] + gammas[1] + 1e-12)
    return tf.maximum(lam, 1.0 - lam)


def mix_batch(x, y, *rest):
    """Blend each example of a batch with its mirror in the batch (inputs, targets, weights)."""
    import tensorflow as tf

    *weight, lam = rest
    partner = tf.reverse(tf.range(tf.shape(x)[0]), [0])
    x = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * tf.gather(x, partner)
    y = lam[:, None] * y + (1.0 - lam[:, None]) * tf.gather(y, partner)
    if weight:
        return x, y, lam * weight[0] + (1.0 - lam) * tf.gather(weight[0], partner)
    return x, y


def spec_augment_masks(
    x,
    *,
    seed,
    time_masks: int,
    time_width: int,
    freq_masks: int,
    freq_width: int,
):
    """SpecAugment: zero ``time_masks`` random frame ranges and ``freq_masks`` band ranges.

    Widths are uniform in ``[0, width]``. Applied after standardisation, so zero is the band
    mean. Random draws come from stateless ops seeded by ``seed`` (int64 ``(2,)``).

    Parameters
    ----------
    x : tf.Tensor, shape (n_mels, n_frames), float32

    Returns
    -------
    tf.Tensor, same shape
    """
    import tensorflow as tf

    n_mels, n_frames = tf.shape(x)[0], tf.shape(x)[1]
    seeds = tf.random.experimental.stateless_split(seed, num=2 * (time_masks + freq_masks) + 1)

    def band(length, count, width, offset):
        positions = tf.range(length)
        masked = tf.zeros([length], tf.bool)
        for i in range(count):
            w = tf.random.stateless_uniform(
                [], seed=seeds[offset + 2 * i], minval=0, maxval=width + 1, dtype=tf.int32
            )
            w = tf.minimum(w, length)
            start = tf.random.stateless_uniform(
                [], seed=seeds[offset + 2 * i + 1], minval=0, maxval=length - w + 1, dtype=tf.int32
            )
            masked = masked | ((positions >= start) & (positions < start + w))
        return masked

    frames = band(n_frames, time_masks, time_width, 0)
    mels = band(n_mels, freq_masks, freq_width, 2 * time_masks)
    keep = ~(mels[:, tf.newaxis] | frames[tf.newaxis, :])
    return tf.where(keep, x, tf.zeros_like(x))
