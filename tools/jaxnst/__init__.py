"""nst-train's step in JAX, for accelerator machines that have JAX but no TensorFlow (tools/jax_train.py runs it).

Imports nothing from nst_tf (numpy, Pillow and JAX only). One job per module:
  model   the networks as pure functions of parameter dicts: VGG16 features, the arbitrary-style network (AdaIN,
          skip decoder, linear transform, moment head, strength FiLM, skip fade, palette layer) and nst_tf.mobile's
          transformer;
  losses  the trainer's loss terms (nst_tf.train.Trainer.compute_losses and _output_terms);
  data    random crops of image folders, with Pillow, and the per-step strengths and palette directions;
  train   Keras' Adam, the jitted step, weights and resumable state in and out, the training loop.
tests/test_jax_train.py checks them against the TensorFlow trainer.
"""
