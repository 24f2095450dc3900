"""Training: the dense, SRMP and MRMP objectives, the KL term, augmentation, dataset readers
and evaluation per rate. Uses the serving core (`mrmp`); the service never imports it."""
