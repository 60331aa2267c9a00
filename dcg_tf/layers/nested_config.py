"""Config round trips for layers built around other layers.

A tower takes its item embedding (a momentum encoder its online tower) as a
constructor argument. Keras stores such an argument in `get_config` as a
serialized layer, and `from_config` must deserialize it before calling the
constructor. `NestedLayerConfig` does both for the arguments a class lists.
"""

from dcg_tf._keras import keras


class NestedLayerConfig:
  """Mixin: `get_config`/`from_config` for constructor arguments that are layers.

  Subclasses name those arguments (stored as attributes of the same name) in
  `NESTED_LAYERS`, add `self.nested_layer_config()` to their `get_config`, and
  inherit `from_config`. List the mixin before `keras.layers.Layer`.

  Example:
    >>> class Tower(NestedLayerConfig, keras.layers.Layer):
    ...   NESTED_LAYERS = ("item_embedding",)
    ...   def get_config(self):
    ...     config = super().get_config()
    ...     config.update(self.nested_layer_config(), output_dim=self.output_dim)
    ...     return config
  """

  NESTED_LAYERS = ()

  def nested_layer_config(self):
    """{argument name: serialized layer} for every name in `NESTED_LAYERS`."""
    return {name: keras.layers.serialize(getattr(self, name))
            for name in self.NESTED_LAYERS}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for name in cls.NESTED_LAYERS:
      config[name] = keras.layers.deserialize(config[name])
    return cls(**config)
