"""The multi-interest user tower contract (docs/design.md, "Towers and models").

A user tower is multi-interest when it has `is_multi_interest = True`; every
consumer (evaluation, export, diagnostics, `dcg_tf.Retriever`, training models)
checks that attribute and the hooks below by name, never the tower's class.

Serving (required):
  is_multi_interest   True.
  max_interests       K, the number of vector slots `call` returns.
  call(batch, training=False) -> (vectors float [B, K, D], mask bool [B, K])
                      mask True = active interest; every row has at least one
                      active slot. Retrieval scores an item by its maximum over
                      the ACTIVE vectors (ComiRec, KDD'20, evaluation); an
                      inactive slot never contributes. AISL (PCL-AISL, CIKM'22,
                      section 2.2, Eq. 4) activates the first K_u slots.

Training hooks (optional; a model calls those its paper needs):
  interests(batch, training=False) -> dict with at least
      "vectors"    float [B, H, D]  every interest the tower extracts (H >= K),
                   before the serving-time choice of K;
      "mask"       bool [B, H]      the interests that may be selected/served;
    and optionally
      "selection"  float [B, H]     target-independent selection weights
                   (Multi-CLRec Eq. 9: the straight-through one-hot tilde w);
      "selected"   int64 [B]        the interest the tower selects (argmax);
      "num_interests" int [B]       AISL's K_u (mask = first K_u slots);
    plus tower-specific tensors its own losses read.
  select_for_target(interests, target_embedding [B, D]) -> weights [B, H]
      target-aware selection (MIND's label-aware attention, ComiRec's argmax
      over <v_h, e_target>); `target_selection` falls back to
      interests["selection"] when a tower has no such method.
  item_interests(item_ids int64 [...]) -> int64 [...] in [0, H)
      the interest an item is routed to (Multi-CLRec Eq. 7); diagnostics
      counts the catalog per interest with it.
  interest_slots      H, the width of interests()["vectors"].
"""

def is_multi_interest(tower):
  """True when `tower` declares the multi-interest contract."""
  return bool(getattr(tower, "is_multi_interest", False))


def split_output(tower, output):
  """A user tower's call output as `(vectors, mask)`; mask None if single.

  Checks the output against the tower's declaration: a multi-interest tower
  must return a pair `([B, K, D], [B, K])` with K = `max_interests`, any
  other tower one tensor [B, D]. Works on tensors (also symbolic ones, inside
  a `tf.function`) and arrays alike.
  """
  name = type(tower).__name__
  if not is_multi_interest(tower):
    if isinstance(output, (tuple, list)):
      raise ValueError("%s returns a %d-tuple but does not declare "
                       "is_multi_interest = True (dcg_tf.towers.multi_interest)"
                       % (name, len(output)))
    return output, None
  if not isinstance(output, (tuple, list)) or len(output) != 2:
    raise ValueError("%s declares is_multi_interest but its call does not return "
                     "(vectors [B, K, D], mask [B, K])" % name)
  vectors, mask = output
  slots = vectors.shape[1] if len(vectors.shape) == 3 else None
  if (len(vectors.shape) != 3 or len(mask.shape) != 2
      or (slots is not None and slots != tower.max_interests)):
    raise ValueError("%s must return vectors [B, K=%d, D] and mask [B, K], got "
                     "shapes %s and %s" % (name, tower.max_interests,
                                           tuple(vectors.shape), tuple(mask.shape)))
  return vectors, mask


def target_selection(tower, interests, target_embedding):
  """Weights [B, H] of each interest for scoring the target.

  `tower.select_for_target(interests, target_embedding)` when the tower has
  it (label-aware attention), else `interests["selection"]` (a selection that
  does not look at the target, e.g. Multi-CLRec Eq. 9).
  """
  select = getattr(tower, "select_for_target", None)
  if select is not None:
    return select(interests, target_embedding)
  if "selection" not in interests:
    raise ValueError("%s has no select_for_target and its interests() output has "
                     "no 'selection' (dcg_tf.towers.multi_interest)"
                     % type(tower).__name__)
  return interests["selection"]

