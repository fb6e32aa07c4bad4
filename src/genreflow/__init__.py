"""genreflow: music genre classification from raw audio, as an HPC workflow.

The sub-packages are the pipeline's stages, in the order a clip goes through them, and the
helpers they share (``docs/architecture.md`` walks one clip through every module):

1. :mod:`genreflow.data`: find a dataset's clips, split them, decode audio.
2. :mod:`genreflow.spectrograms`: log-mel segment shards on 1..N MPI ranks, and the clip
   tables later stages read them through.
   :mod:`genreflow.classical` (the MFCC + SVM baseline) and :mod:`genreflow.backbones` (the
   pretrained musicnn backbone and its embedding stage) build on them.
3. :mod:`genreflow.training`: training inputs, the CNN or the head on a backbone, fit,
   checkpoints, export.
4. :mod:`genreflow.evaluation`: test-split metrics beside baselines.
5. :mod:`genreflow.prediction`: a trained model on new audio (files, stored segments,
   streams); :mod:`genreflow.serve` puts it behind HTTP.
6. :mod:`genreflow.report`: timings and metrics -> speed-up tables and plots.

Shared: :mod:`genreflow.core` (config, errors, atomic output, progress, threads),
:mod:`genreflow.metrics`, :mod:`genreflow.snakefile` (what the Snakemake workflow imports).
Beside them: :mod:`genreflow.demo` (synthetic demo music) and :mod:`genreflow.commands`
(one module per ``genreflow`` sub-command).
"""

__version__ = "0.1.0"
