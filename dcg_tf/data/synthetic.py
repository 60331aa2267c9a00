"""Realistic synthetic interaction data, written in the raw formats the loaders read.

The generator (`generate`) draws, with one seed:
- items with Zipf popularity (weight of the r-th most popular item ~ r^-alpha,
  ranks shuffled over item ids);
- a category per item (contiguous blocks of item ids, so the category is a
  function of item identity) and a brand per item drawn from its category's
  own brands, so category, brand and item share information;
- users with log-normal activity (a few heavy users, many light ones, at
  least `min_events` each) and one to three favourite categories: an event
  picks a favourite category with probability `affinity`, otherwise a category
  by global popularity, then an item of that category by popularity;
- timestamps with session structure: within a session, gaps are exponential
  with a mean of `in_session_gap` seconds (default 3 minutes); a new session
  starts with probability `new_session_prob` after a gap of about
  `between_session_gap` seconds (default 2 days).
With `exact=True` the counts are exact: `num_events` events (the users'
rounded-down shares topped up by largest remainder) and every one of
`num_items` items in at least one event (events that repeat an item are
re-pointed at the items never drawn; the rest of the draw is unchanged).
Everything is vectorised NumPy; the writers format lines with `str` methods
over whole chunks.

`generate_correlated_fields` draws item fields in correlated groups of known
mutual information (`planted_mutual_information`) for SSL-CFM's masking.

Writers: `write_amazon_2014` (reviews JSON lines + Python-literal metadata, as
the original `reviews_<Cat>.json` / `meta_<Cat>.json`), `write_sequence_pairs`
(`user item` lines), `write_movielens` (ml-latest CSV files).
"""

import dataclasses
import gzip
import os

import numpy as np

_WORDS = np.array(
    "good great nice fine poor solid cheap soft light dark small large classic "
    "daily travel home pro ultra mini fresh natural gentle bold quick easy "
    "smooth strong clear bright warm cool".split())
_SENTENCES = np.array([
    "Works as described.", "I use it every day and it still looks new.",
    "Not what I expected, the size is smaller than in the picture.",
    "Great value for the price!", "Arrived quickly, well packed.",
    "My second one; I keep buying it.", "It broke after a month.",
    "Smells nice and lasts all day.", "Good quality, would recommend to friends.",
    "The color is a bit off but it does the job."])


@dataclasses.dataclass
class SyntheticData:
  """Events sorted by (user, time) plus the item side information.

  Attributes:
    user, item: int64 [E], 0-based ids.
    timestamp: int64 [E] seconds.
    rating: float32 [E] in 1..5.
    item_category, item_brand: int64 [I].
    item_popularity: float64 [I] sampling weights (sum 1).
  """
  user: np.ndarray
  item: np.ndarray
  timestamp: np.ndarray
  rating: np.ndarray
  item_category: np.ndarray
  item_brand: np.ndarray
  item_popularity: np.ndarray
  num_users: int
  num_items: int
  num_categories: int


def generate(num_events, num_users=None, num_items=None, num_categories=None,
             alpha=1.0, affinity=0.8, min_events=5, in_session_gap=180.0,
             between_session_gap=2 * 86400.0, new_session_prob=0.2,
             start_time=1_262_304_000, exact=False, seed=0):
  """Draws a synthetic dataset of about `num_events` events (see module doc).

  With `exact`, exactly `num_events` events over exactly `num_users` users
  and `num_items` items (each used at least once); needs
  `min_events * num_users <= num_events` and `num_items <= num_events`.
  """
  rng = np.random.default_rng(seed)
  num_users = num_users or max(10, num_events // 12)
  num_items = num_items or max(10, num_events // 25)
  num_categories = num_categories or max(2, int(np.sqrt(num_items) / 2))
  num_categories = min(num_categories, num_items)

  # Items: Zipf weights over shuffled ranks; categories are id blocks.
  pop = 1.0 / np.arange(1, num_items + 1) ** alpha
  pop = pop[rng.permutation(num_items)]
  pop /= pop.sum()
  cat = np.sort(rng.integers(0, num_categories, num_items))
  cat[:num_categories] = np.arange(num_categories)        # every category used
  cat = np.sort(cat)
  brands_per_cat = rng.integers(1, 6, num_categories)
  brand_base = np.concatenate([[0], np.cumsum(brands_per_cat)[:-1]])
  brand = brand_base[cat] + (rng.integers(0, 1 << 30, num_items) % brands_per_cat[cat])

  # Users: log-normal activity scaled to about num_events.
  raw = rng.lognormal(0.0, 1.0, num_users)
  extra = np.maximum(num_events - min_events * num_users, 0)
  share = raw / raw.sum() * extra
  counts = min_events + np.floor(share).astype(np.int64)
  if exact:
    if min_events * num_users > num_events or num_items > num_events:
      raise ValueError(
          "exact=True needs num_events >= min_events x num_users (%d x %d) and "
          ">= num_items (%d), got %d; raise num_events or lower the others"
          % (min_events, num_users, num_items, num_events))
    short = num_events - int(counts.sum())                 # < num_users
    counts[np.argsort(np.floor(share) - share, kind="stable")[:short]] += 1
  user = np.repeat(np.arange(num_users, dtype=np.int64), counts)
  n = user.size

  # Categories per event: favourite (1..3 per user) or by global popularity.
  cat_pop = np.bincount(cat, weights=pop, minlength=num_categories)
  favs = rng.choice(num_categories, size=(num_users, 3), p=cat_pop)
  num_favs = rng.integers(1, 4, num_users)
  pick = (rng.random(n) * num_favs[user]).astype(np.int64)
  event_cat = np.where(rng.random(n) < affinity, favs[user, pick],
                       rng.choice(num_categories, size=n, p=cat_pop))
  # Item within the category by popularity: inverse CDF on per-category CDFs
  # laid side by side as [c, c+1) intervals.
  cat_total = cat_pop[cat]
  within = np.cumsum(pop) - np.concatenate([[0], np.cumsum(cat_pop)])[cat]
  cdf = cat + within / cat_total                               # [I], in (c, c+1]
  item = np.searchsorted(cdf, event_cat + rng.random(n) * (1 - 1e-12), side="right")
  item = np.minimum(item, num_items - 1).astype(np.int64)
  if exact:   # its own generator: the draws below stay those of exact=False
    item = _cover_items(item, num_items, np.random.default_rng([seed, 1]))

  # Session-structured timestamps.
  first = np.ones(n, bool)
  first[1:] = user[1:] != user[:-1]
  new_session = (rng.random(n) < new_session_prob) & ~first
  gaps = np.where(new_session, rng.exponential(between_session_gap, n),
                  rng.exponential(in_session_gap, n))
  gaps = np.maximum(gaps, 1.0).astype(np.int64)
  gaps[first] = (start_time + rng.integers(0, 365 * 86400, num_users))[user[first]]
  cum = np.cumsum(gaps)
  base = np.maximum.accumulate(np.where(first, cum - gaps, 0))
  timestamp = (cum - base).astype(np.int64)
  rating = np.clip(np.round(rng.normal(4.0, 1.0, n)), 1, 5).astype(np.float32)
  return SyntheticData(user, item, timestamp, rating, cat.astype(np.int64),
                       brand.astype(np.int64), pop, num_users, num_items,
                       num_categories)


def _cover_items(item, num_items, rng):
  """Re-points events that repeat an item at the items no event drew.

  An event is spare when its item occurs at an earlier position too, so
  moving any set of spare events leaves every drawn item drawn; each of the
  M missing items takes one of M distinct spare events chosen uniformly.
  """
  missing = np.flatnonzero(np.bincount(item, minlength=num_items) == 0)
  if missing.size == 0:
    return item
  order = np.argsort(item, kind="stable")
  repeat = np.zeros(item.size, bool)
  repeat[1:] = item[order][1:] == item[order][:-1]
  spare = order[repeat]                   # events whose item occurred before
  item = item.copy()
  item[rng.choice(spare, missing.size, replace=False)] = rng.permutation(missing)
  return item


# === Item fields in correlated groups (SSL-CFM) ===


@dataclasses.dataclass
class CorrelatedFields:
  """Catalog fields with planted correlation groups.

  Attributes:
    features: dict name -> int64 [N+1] (single-valued) or [N+1, L]
      (multi-valued, 0-padded); row 0 is padding (all 0), values are 1-based
      as in `catalog.npz`.
    groups: dict name -> the index of the field's group.
    num_values: list, K_g (values of group g's latent and of its fields).
    noise: list, epsilon_g (the chance that a field ignores the latent).
    num_items: N.
  """
  features: dict
  groups: dict
  num_values: list
  noise: list
  num_items: int


def generate_correlated_fields(num_items, group_sizes=(3, 3, 2),
                               num_values=(16, 8, 4), noise=(0.1, 0.3, 0.2),
                               multi_valued_extra=2, seed=0, latents=None):
  """Item fields in groups of known mutual information (SSL-CFM, Eq. 4).

  Group g has a latent z_g per item, uniform over K_g = `num_values[g]`
  values, independent across groups. Each field of group g is a noisy copy
  of z_g: the latent w.p. 1 - epsilon_g (`noise[g]`), otherwise a uniform
  value of the K_g, drawn independently per field and item. So two
  single-valued fields of one group share `planted_mutual_information(K_g,
  epsilon_g)` nats and fields of different groups none. The last field of
  group 0 is multi-valued: its noisy copy plus up to `multi_valued_extra`
  uniform extra values (0-padded), so the groups hold both kinds of field.
  Field `g<g>_f<m>` is field m of group g; k = sum(group_sizes) (8 by default).
  `latents` (optional) fixes some groups' latents: {g: int [N] in 0..K_g-1},
  e.g. a function of the item's category so that behaviour depends on the
  group (`write_correlated_csv`); a latent uniform over its K_g values keeps
  the planted mutual information exact.

  Returns:
    `CorrelatedFields`.
  """
  if not len(group_sizes) == len(num_values) == len(noise):
    raise ValueError("group_sizes, num_values and noise need one entry per "
                     "group, got %d, %d and %d"
                     % (len(group_sizes), len(num_values), len(noise)))
  rng = np.random.default_rng(seed)
  features, groups = {}, {}
  for g, (size, k, eps) in enumerate(zip(group_sizes, num_values, noise)):
    latent = rng.integers(0, k, num_items)                     # [N]
    if latents is not None and g in latents:
      latent = np.asarray(latents[g], np.int64)
      if latent.shape != (num_items,) or latent.min() < 0 or latent.max() >= k:
        raise ValueError("latents[%d] must be %d values in 0..%d"
                         % (g, num_items, k - 1))
    for m in range(size):
      copy = np.where(rng.random(num_items) < eps,
                      rng.integers(0, k, num_items), latent) + 1   # [N], 1..K
      name = "g%d_f%d" % (g, m)
      if g == 0 and m == size - 1 and multi_valued_extra > 0:
        extra = rng.integers(1, k + 1, (num_items, multi_valued_extra))
        kept = rng.random((num_items, multi_valued_extra)) < 0.5
        column = np.concatenate([copy[:, None], np.where(kept, extra, 0)], 1)
        column = np.concatenate([np.zeros((1, column.shape[1]), np.int64),
                                 column])                        # [N+1, L]
      else:
        column = np.concatenate([[0], copy])                     # [N+1]
      features[name] = column.astype(np.int64)
      groups[name] = g
  return CorrelatedFields(features, groups, list(num_values), list(noise),
                          num_items)


def planted_mutual_information(num_values, noise):
  """I(X; Y) in nats of two noisy copies of one uniform latent over K values.

  P(x | z) = (1 - e)[x = z] + e / K for each copy, so with c = (1 - e)^2
  P(x, y) = c / K [x = y] + (1 - c) / K^2 and both marginals are 1/K:
  I = K p_same log(K^2 p_same) + (K^2 - K) p_diff log(K^2 p_diff).
  """
  k, c = float(num_values), (1.0 - noise) ** 2
  same, diff = c / k + (1 - c) / k ** 2, (1 - c) / k ** 2
  total = k * same * np.log(k * k * same)
  if diff > 0:
    total += (k * k - k) * diff * np.log(k * k * diff)
  return float(total)


# === Raw ids ===


def user_ids(users):
  return np.char.add("A", np.char.zfill(np.char.mod("%X", users + 0x1000), 13))


def item_ids(items):
  return np.char.add("B", np.char.zfill(np.char.mod("%d", items), 9))


def category_path(c):
  return ["Synthetic", "Department %d" % (c % 7), "Category %d" % c]


def _open(path, compress):
  return gzip.open(path, "wt", encoding="utf-8", compresslevel=1) if compress \
      else open(path, "w", encoding="utf-8")


# === Writers ===


def write_amazon_2014(data, folder, name="Synthetic", compress=False,
                      chunk=500_000, seed=0):
  """Writes `reviews_<name>.json[.gz]` and `meta_<name>.json[.gz]` (2014 format).

  Reviews are strict JSON in the 2014 key order; metadata lines are Python
  dict literals (single quotes), as in the original files.

  Returns:
    (reviews path, meta path).
  """
  os.makedirs(folder, exist_ok=True)
  suffix = ".json.gz" if compress else ".json"
  reviews = os.path.join(folder, "reviews_%s%s" % (name, suffix))
  meta = os.path.join(folder, "meta_%s%s" % (name, suffix))
  rng = np.random.default_rng(seed)
  uid, iid = user_ids(np.arange(data.num_users)), item_ids(np.arange(data.num_items))
  template = ('{"reviewerID": "%s", "asin": "%s", "reviewerName": "User %s", '
              '"helpful": [%d, %d], "reviewText": "%s", "overall": %.1f, '
              '"summary": "%s", "unixReviewTime": %d, "reviewTime": "%s"}\n')
  with _open(reviews, compress) as f:
    for lo in range(0, data.user.size, chunk):
      sl = slice(lo, lo + chunk)
      u, it, ts = data.user[sl], data.item[sl], data.timestamp[sl]
      m = ts.size
      helpful = rng.integers(0, 5, (m, 2))
      helpful[:, 1] += helpful[:, 0]
      text = _SENTENCES[rng.integers(0, _SENTENCES.size, m)]
      summary = _WORDS[rng.integers(0, _WORDS.size, m)]
      days = ts // 86400
      uniq, inv = np.unique(days, return_inverse=True)
      dates = np.datetime_as_string(uniq.astype("datetime64[D]"))
      date_str = np.array(["%s %s, %s" % (d[5:7], d[8:10], d[:4]) for d in dates])[inv]
      f.write("".join(map(template.__mod__, zip(
          uid[u], iid[it], u, helpful[:, 0], helpful[:, 1], text,
          data.rating[sl].astype(float), summary, ts, date_str))))
  with _open(meta, compress) as f:
    price = np.round(rng.lognormal(2.5, 0.8, data.num_items), 2)
    for k in range(data.num_items):
      c, b = int(data.item_category[k]), int(data.item_brand[k])
      words = _WORDS[(np.arange(3) * 7 + k * 13 + c) % _WORDS.size]
      obj = {"asin": str(iid[k]),
             "title": "%s %s %s by Brand %d" % (words[0].title(), words[1],
                                                category_path(c)[-1].lower(), b),
             "price": float(price[k]),
             "imUrl": "http://example.com/%s.jpg" % iid[k],
             "salesRank": {category_path(c)[0]: int(k + 1)},
             "categories": [category_path(c), ["Synthetic", "Everything"]],
             "brand": "Brand %d" % b}
      f.write(repr(obj) + "\n")
  return reviews, meta


def write_sequence_pairs(data, path):
  """Writes `user item` lines (1-based integer ids), grouped by user in time order."""
  lines = np.char.add(np.char.add((data.user + 1).astype(str), " "),
                      (data.item + 1).astype(str))
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines.tolist()) + "\n")
  return path


def write_correlated_csv(data, fields, path):
  """Writes events with the items' correlated fields as one CSV (SSL-CFM data).

  Columns: `user,item,timestamp` (raw ids as the other writers name them)
  and one column per field of `fields` (a `CorrelatedFields` over
  `data.num_items` items), multi-valued fields joined by `|`. The csv loader
  keeps each item's first row of features:

    python -m experiments.preprocess --format=csv --input=PATH \
        --csv_timestamp=timestamp --csv_item_features=<single fields> \
        --csv_multi_features=<multi fields> --output_dir=DATA

  Returns:
    the path.
  """
  if fields.num_items != data.num_items:
    raise ValueError("fields describe %d items, the events %d"
                     % (fields.num_items, data.num_items))
  names = sorted(fields.features)
  columns = [user_ids(data.user), item_ids(data.item), data.timestamp.astype(str)]
  for name in names:
    values = fields.features[name][data.item + 1]                # [E] or [E, L]
    if values.ndim == 1:
      columns.append(values.astype(str))
    else:
      joined = np.array(["|".join(str(v) for v in row if v > 0) for row in values])
      columns.append(joined)
  header = ",".join(["user", "item", "timestamp"] + names)
  with open(path, "w", encoding="utf-8") as f:
    f.write(header + "\n")
    rows = columns[0]
    for column in columns[1:]:
      rows = np.char.add(np.char.add(rows, ","), column)
    f.write("\n".join(rows.tolist()) + "\n")
  return path


_GENRES = np.array(["Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
                    "Documentary", "Drama", "Fantasy", "Horror", "Romance", "Sci-Fi",
                    "Thriller"])


def write_movielens(data, folder, seed=0):
  """Writes ml-latest style `ratings.csv`, `movies.csv`, `tags.csv` into `folder`.

  Movie titles contain commas and quotes (CSV quoting is exercised); genres
  follow the category (two genres per category).
  """
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  half = np.round(data.rating * 2) / 2
  with open(os.path.join(folder, "ratings.csv"), "w", encoding="utf-8") as f:
    f.write("userId,movieId,rating,timestamp\n")
    f.write("".join(map("%d,%d,%.1f,%d\n".__mod__, zip(
        (data.user + 1).tolist(), (data.item + 1).tolist(), half.tolist(),
        data.timestamp.tolist()))))
  with open(os.path.join(folder, "movies.csv"), "w", encoding="utf-8") as f:
    f.write("movieId,title,genres\n")
    for k in range(data.num_items):
      c = int(data.item_category[k])
      genres = "|".join(_GENRES[[c % _GENRES.size, (c * 5 + 3) % _GENRES.size]])
      title = '"Movie %d, ""Part %d"" (%d)"' % (k + 1, c, 1950 + k % 70)
      f.write("%d,%s,%s\n" % (k + 1, title, genres))
  sel = rng.choice(data.user.size, size=min(data.user.size, max(1, data.user.size // 20)),
                   replace=False)
  with open(os.path.join(folder, "tags.csv"), "w", encoding="utf-8") as f:
    f.write("userId,movieId,tag,timestamp\n")
    for e in np.sort(sel):
      f.write("%d,%d,%s,%d\n" % (data.user[e] + 1, data.item[e] + 1,
                                 _WORDS[data.item_category[data.item[e]] % _WORDS.size],
                                 data.timestamp[e]))
  return folder
