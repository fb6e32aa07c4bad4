"""The kernels under :class:`genreflow.spectrograms.logmel.LogMel`: framing, a float32 real FFT, mel bands.

Three choices make a 30-s clip's log-mel cost what its FFTs cost (``benchmarks/bench_spectrograms.py``):

- Frames are read straight from the samples as strided views, in blocks that stay in the core's
  cache with their spectra; only the few frames that reach past either end of the clip are
  built from a zero-padded copy (a centred STFT), so the clip itself is never copied.
- The FFT is scipy's pocketfft in float32, writing into a reused buffer. Its module is loaded
  on its own: ``import scipy.fft`` costs ~0.4 s (its array-API layer imports ``numpy.f2py``
  and ``numpy.testing``), more than half of an MPI rank's start-up, while the extension
  module alone loads in a few milliseconds. It is the code ``scipy.fft.rfft`` runs; if a
  future scipy moves it, :func:`real_fft` falls back to ``scipy.fft.rfft``.
- Each mel filter covers a few neighbouring FFT bins, so the filterbank product runs as a few
  dense products, one per group of neighbouring filters over just the bins they cover
  (~8x fewer multiplications than the whole matrix, and no ``scipy.sparse``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

_POCKETFFT = "scipy.fft._pocketfft.pypocketfft"

RealFFT = Callable[[np.ndarray, np.ndarray], object]
_real_fft: RealFFT | None = None


def real_fft() -> RealFFT:
    """``fft(frames, out)``: the real FFT of each row of ``frames`` written into ``out``.

    ``frames`` has shape (k, n) float32; ``out`` has shape (k, n // 2 + 1) complex64.
    Unnormalised and forward, like ``numpy.fft.rfft(frames, axis=1)``.
    """
    global _real_fft
    if _real_fft is None:
        module = _load_pocketfft()
        if module is not None:

            def pocketfft(frames: np.ndarray, out: np.ndarray, _r2c=module.r2c) -> object:
                return _r2c(frames, (1,), True, 0, out, 1)

            _real_fft = pocketfft
        else:  # only if scipy's layout changes (tests/spectrograms/test_logmel.py takes this path too)
            import scipy.fft

            def fallback(frames: np.ndarray, out: np.ndarray) -> object:
                out[...] = scipy.fft.rfft(frames, axis=1)
                return out

            _real_fft = fallback
    return _real_fft


def _load_pocketfft():
    """scipy's pocketfft extension module, without running ``scipy/fft/__init__.py``."""
    if _POCKETFFT in sys.modules:  # scipy.fft is already imported: share its module
        return sys.modules[_POCKETFFT]
    try:
        scipy_spec = importlib.util.find_spec("scipy")  # locates the package, imports nothing
        if scipy_spec is None or scipy_spec.origin is None:
            return None
        folder = Path(scipy_spec.origin).parent / "fft" / "_pocketfft"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"pypocketfft{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(_POCKETFFT, str(path))
                spec = importlib.util.spec_from_file_location(_POCKETFFT, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                if not callable(getattr(module, "r2c", None)):
                    return None
                return module
    except (ImportError, OSError):
        return None
    return None


def frame_blocks(
    samples: np.ndarray, *, n_fft: int, hop_length: int, n_frames: int, block: int
) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of a centred, zero-padded STFT, a block at a time.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), float32, contiguous
    n_fft, hop_length : int
        Frame ``i`` covers samples ``[i * hop_length - n_fft // 2, ... + n_fft)``; samples
        outside the clip are zeros.
    n_frames : int
        Frames wanted (``1 + n // hop_length``).
    block : int
        Most frames per block.

    Yields
    ------
    first : int
        Index of the block's first frame.
    frames : np.ndarray, shape (k, n_fft), k <= block
        Read-only views of ``samples`` (or of a small padded copy for frames at the edges).
    """
    pad = n_fft // 2
    length = len(samples)
    view = np.lib.stride_tricks.sliding_window_view
    # Frames lying wholly inside the clip: first_inner .. last_inner.
    first_inner = -(-pad // hop_length)
    last_inner = (length + pad - n_fft) // hop_length
    if last_inner < first_inner or length < 2 * n_fft:  # short clip: pad it all (cheap)
        padded = np.zeros(length + 2 * pad, dtype=np.float32)
        padded[pad : pad + length] = samples
        frames = view(padded, n_fft)[::hop_length][:n_frames]
        for first in range(0, n_frames, block):
            yield first, frames[first : first + block]
        return
    last_inner = min(last_inner, n_frames - 1)
    # Head: frames 0 .. first_inner - 1 start before sample 0.
    head_end = (first_inner - 1) * hop_length - pad + n_fft  # last sample they reach
    head = np.zeros(pad + head_end, dtype=np.float32)
    head[pad:] = samples[:head_end]
    yield 0, view(head, n_fft)[::hop_length][:first_inner]
    inner = view(samples[first_inner * hop_length - pad :], n_fft)[::hop_length]
    for first in range(first_inner, last_inner + 1, block):
        stop = min(first + block, last_inner + 1)
        yield first, inner[first - first_inner : stop - first_inner]
    if last_inner + 1 < n_frames:
        # Tail: frames past last_inner end after the last sample.
        start = (last_inner + 1) * hop_length - pad
        reach = (n_frames - 1) * hop_length - pad + n_fft
        tail = np.zeros(reach - start, dtype=np.float32)
        tail[: max(length - start, 0)] = samples[start:]
        yield last_inner + 1, view(tail, n_fft)[::hop_length][: n_frames - 1 - last_inner]


class MelBands:
    """A mel filterbank product as a few dense products over the bins each group covers.

    Parameters
    ----------
    filterbank : np.ndarray, shape (n_mels, n_bins)
        Non-negative weights; each filter is non-zero on a run of neighbouring bins.
    groups : int
        Neighbouring filters are taken this many groups at a time (equal counts).
    """

    def __init__(self, filterbank: np.ndarray, *, groups: int = 8) -> None:
        weights = np.asarray(filterbank, dtype=np.float32)
        self.n_mels, self.n_bins = weights.shape
        self.bands: list[tuple[int, int, int, int, np.ndarray]] = []
        edges = np.linspace(0, self.n_mels, min(groups, self.n_mels) + 1).round().astype(int)
        for m0, m1 in zip(edges[:-1], edges[1:], strict=True):
            used = np.flatnonzero(weights[m0:m1].any(axis=0))
            b0, b1 = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
            self.bands.append((m0, m1, b0, b1, np.ascontiguousarray(weights[m0:m1, b0:b1].T)))

    @property
    def multiplies_per_frame(self) -> int:
        return sum((b1 - b0) * (m1 - m0) for m0, m1, b0, b1, _ in self.bands)

    def apply(self, power: np.ndarray, *, out: np.ndarray) -> np.ndarray:
        """``out[:] = power @ filterbank.T``.

        Parameters
        ----------
        power : np.ndarray, shape (k, n_bins), float32
        out : np.ndarray, shape (k, n_mels), float32
        """
        for m0, m1, b0, b1, weights in self.bands:
            np.matmul(power[:, b0:b1], weights, out=out[:, m0:m1])
        return out
