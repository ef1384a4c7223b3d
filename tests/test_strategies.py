"""nst_tf.strategies: tf.distribute strategies by name."""

import pytest
import tensorflow as tf

from nst_tf import strategies


def test_default_is_the_current_strategy():
    assert strategies.make_strategy("default") is tf.distribute.get_strategy()


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown strategy 'gpu' .*default, mirrored, multi_worker, tpu"):
        strategies.make_strategy("gpu")
