"""Run by test_train: one training step on the same batch, single device vs MirroredStrategy on 2 logical CPUs.

Usage: python tests/mirrored_check.py CONTENT_DIR STYLE_DIR WORK_DIR VGG16_WEIGHTS -> JSON on stdout.
The CPU split must happen before TensorFlow starts, hence a separate process.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

from nst_tf import strategies, train
from nst_tf.network import NetworkConfig

content_dir, style_dir, work, weights = sys.argv[1:5]
strategies.split_cpu(2)
small = NetworkConfig(decoder_channels=(16, 16, 8, 8, 8, 8), preprocessing="caffe")
rng = np.random.default_rng(0)
batch = (tf.constant(rng.uniform(size=(4, 32, 32, 3)), tf.float32), tf.constant(rng.uniform(size=(4, 32, 32, 3)),
                                                                                  tf.float32))
report, start = {}, None
for name in ("default", "mirrored"):
    config = train.TrainConfig(content_dir=content_dir, style_dir=style_dir, model_dir=os.path.join(work, name),
                               weights=weights, batch_size=4, crop=32, identity_weight=1.0)
    trainer = train.Trainer(config, strategies.make_strategy(name), network_config=small)
    if start is None:
        start = trainer.net.decoder.get_weights()
    trainer.net.decoder.set_weights(start)
    dataset = tf.data.Dataset.from_tensors(batch)
    losses = [trainer.train_step(b)[0] for b in trainer.strategy.experimental_distribute_dataset(dataset)]
    report[name] = {"replicas": trainer.strategy.num_replicas_in_sync, "losses": losses[0],
                    "weights": [float(np.abs(w).sum()) for w in trainer.net.decoder.get_weights()],
                    "max_weight_change": max(float(np.abs(a - b).max())
                                             for a, b in zip(trainer.net.decoder.get_weights(), start))}
print(json.dumps(report))
