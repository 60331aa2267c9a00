"""Shared checks every layer test runs (KerasHub's `run_layer_test` idea).

`run_layer_test` builds a layer from its constructor arguments and checks:
- the eager output has the expected shape and is finite;
- a config round trip (`from_config(get_config())`, also through JSON) gives a
  layer that, with the original weights, returns the same output;
- the same call inside `tf.function` returns the same output;
- one SGD step: every trainable weight gets a gradient, embedding tables get
  `tf.IndexedSlices`, and a step along the gradient lowers a fixed quadratic
  loss (the largest of a few step sizes that does).

`savedmodel_outputs_in_fresh_process` serves the export check: it loads
SavedModels in a subprocess that imports only TensorFlow (never dcg_tf).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras


def _call(layer, input_data, training=False):
  return layer(input_data, training=training)


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape,
                   sparse_weights=(), call_fn=_call, atol=1e-6):
  """Runs the shared layer checks; returns the layer for further assertions.

  Args:
    cls: the layer class.
    init_kwargs: constructor arguments.
    input_data: a tensor or dict of tensors.
    expected_output_shape: tuple the eager output must have.
    sparse_weights: substrings of names of weights whose gradient must be a
      `tf.IndexedSlices` (embedding tables).
    call_fn: `call_fn(layer, input_data, training)` -> output tensor.
    atol: tolerance of the output comparisons.
  """
  keras.utils.set_random_seed(0)  # repeatable initial weights
  layer = cls(**init_kwargs)
  output = call_fn(layer, input_data)
  assert tuple(output.shape) == tuple(expected_output_shape), (
      output.shape, expected_output_shape)
  assert np.all(np.isfinite(output.numpy()))

  # Config round trip, directly and through JSON (configs must stay plain).
  config = layer.get_config()
  for cfg in (config, json.loads(json.dumps(config))):
    clone = cls.from_config(cfg)
    call_fn(clone, input_data)  # builds the clone's weights
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(call_fn(clone, input_data).numpy(),
                               output.numpy(), atol=atol)

  # Graph mode gives the eager result.
  graph_output = tf.function(lambda x: call_fn(layer, x))(input_data)
  np.testing.assert_allclose(graph_output.numpy(), output.numpy(), atol=atol)

  # One training step on a fixed quadratic target lowers the loss.
  target = tf.constant(np.random.default_rng(0).normal(size=output.shape),
                       output.dtype)

  def loss_fn():
    return tf.reduce_sum(tf.square(call_fn(layer, input_data) - target))

  with tf.GradientTape() as tape:
    loss = loss_fn()
  variables = layer.trainable_variables
  assert variables, "%s has no trainable weights" % cls.__name__
  gradients = tape.gradient(loss, variables)
  for s in sparse_weights:
    assert any(s in v.name for v in variables), (
        "no trainable weight named like %r in %s" % (s, [v.name for v in variables]))
  for variable, gradient in zip(variables, gradients):
    assert gradient is not None, "no gradient for %s" % variable.name
    if any(s in variable.name for s in sparse_weights):
      assert isinstance(gradient, tf.IndexedSlices), (
          "%s got a dense gradient" % variable.name)
  # Backtracking: a correct gradient lowers the loss for some small enough step
  # (a fixed step can overshoot where LayerNorm makes the loss steep).
  initial = layer.get_weights()
  for learning_rate in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
    keras.optimizers.SGD(learning_rate=learning_rate).apply_gradients(
        zip(gradients, variables))
    if float(loss_fn()) < float(loss):
      break
    layer.set_weights(initial)
  else:
    raise AssertionError("no SGD step along the gradient lowered the loss of %s"
                         % cls.__name__)
  return layer


def savedmodel_outputs_in_fresh_process(exports):
  """Loads SavedModels with plain TensorFlow in a subprocess and runs them.

  Args:
    exports: list of (saved_model_dir, inputs dict name -> np.ndarray, out_npy);
      each model's "serving_default" signature is called with the inputs and
      its single output is written to `out_npy`.

  Returns:
    The list of outputs read back, in order.
  """
  script = textwrap.dedent("""
      import json, sys
      import numpy as np
      import tensorflow as tf
      for directory, inputs_npz, out in json.loads(sys.argv[1]):
        model = tf.saved_model.load(directory)
        with np.load(inputs_npz, allow_pickle=False) as data:
          inputs = {k: tf.constant(data[k]) for k in data.files}
        outputs = model.signatures["serving_default"](**inputs)
        assert len(outputs) == 1, sorted(outputs)
        np.save(out, next(iter(outputs.values())).numpy())
      assert "dcg_tf" not in sys.modules and "tf_keras" not in sys.modules, (
          sorted(m for m in sys.modules if "dcg" in m or "keras" in m))
  """)
  jobs = []
  for directory, inputs, out in exports:
    inputs_npz = str(out) + ".inputs.npz"
    np.savez(inputs_npz, **inputs)
    jobs.append([str(directory), inputs_npz, str(out)])
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", script, json.dumps(jobs)],
                          env=env, capture_output=True, text=True, timeout=300,
                          cwd="/", check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return [np.load(out, allow_pickle=False) for _, _, out in jobs]
