"""Every demonstration is a datapoint: embeddings and features -> ``valuation`` -> data_value.csv.

Per demonstration (its id is the record's content hash):

* **embedding**: mean video-encoder features of the IDM over the demonstration's (t, t+1) windows [F];
* **novelty_score**: ``valuation.novelty.embedding_novelty`` (exact k-NN, identity encoder on the
  standardized embeddings), leave-one-out: mean distance to the k nearest *other* demonstrations,
  divided by √(2F);
* **causal_gain**: ``valuation.causal_gain.information_gain`` of a Gaussian-MLP ensemble policy
  (x = per-window video features ⊕ proprioception, y = IDM action label), averaged over the
  demonstration's windows: how much the ensemble still disagrees where this demonstration acts;
* **E[ΔMPL], interval, κ**: ``valuation.bayes_linear`` fitted on a history of (novelty, causal gain,
  realized ΔMPL) rows (``--history``; by default valuation's shipped example history, a stand-in
  until this pipeline's own realized gains are logged);
* **tier, premium quote**: ``valuation.pricing.make_quotes`` with the task's valuation settings;
* **realized gain, true-up**: filled from a realized-gains CSV when given (``valuation.pricing.compute_trueup``).

The CSV is written by ``valuation.csv_formats.write_data_value_csv``; E[ΔMPL] through the premium
come from ``valuation.quote.quote_batch``, the quote CLI's own path.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .demo_loader import DemoLoader
from .idm import FRAME_OFFSETS, IDMNet, _norm
from .records import Record

def _default_history() -> str:
    """valuation's shipped example history (package data), located through the installed package."""
    import valuation

    return os.path.join(os.path.dirname(valuation.__file__), "examples", "history.csv")


def window_features(net: IDMNet, variables, records: Sequence[Record], labels: dict, batch_size: int = 256):
    """Per-window features for the causal-gain ensemble.

    Returns:
      (x [N, F + P] video features ⊕ normalized proprio at t, y [N, A] labels, owner [N] record index,
       embeddings [R, F] per-record mean features).
    """
    enc = jax.jit(lambda p, f: net.apply({"params": p}, f, method=IDMNet.embed))
    norm = _norm(variables)
    xs, ys, owner, emb = [], [], [], []
    for i, r in enumerate(records):
        loader = DemoLoader([r], FRAME_OFFSETS, 1, batch_size)
        feats, props = [], []
        for b in loader.sequential(batch_size):
            feats.append(np.asarray(enc(variables["params"], jnp.asarray(b["frames"]))))
            props.append(np.asarray(norm(jnp.asarray(b["proprio"][:, 0]))))
        f = np.concatenate(feats)
        emb.append(f.mean(0))
        xs.append(np.concatenate([f, np.concatenate(props)], -1))
        ys.append(np.asarray(labels[r.id]))
        owner.append(np.full(f.shape[0], i))
    return (np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32), np.concatenate(owner),
            np.stack(emb).astype(np.float32))


def novelty_scores(embeddings: np.ndarray, k: int = 5) -> np.ndarray:
    """Leave-one-out embedding novelty [R] through ``valuation.novelty`` (k clipped to R − 1)."""
    from valuation import novelty as nov

    r = embeddings.shape[0]
    if r < 2:
        return np.zeros((r,), np.float64)
    z = (embeddings - embeddings.mean(0)) / (embeddings.std(0) + 1e-6)
    k_eff = int(min(k, r - 1))
    tf = nov.embedding_novelty(z.shape[1], k=k_eff + 1, capacity=r, members=1, encoder="identity",
                               chunk_size=max(8, r), query_block=max(8, r))
    state = tf.update(tf.init(jax.random.PRNGKey(0)), jnp.asarray(z))
    d = np.sort(np.asarray(tf.knn(state, jnp.asarray(z)))[0], axis=-1)  # [R, k+1], the first is the point itself
    # scaled by sqrt(2·F), the expected distance of two independent standardized embeddings, so that
    # novelty ≈ 1 is "typical" and ≈ 0 a near-duplicate, whatever the encoder width
    return (d[:, 1:].mean(-1) / np.sqrt(2.0 * z.shape[1])).astype(np.float64)


def causal_gains(x: np.ndarray, y: np.ndarray, owner: np.ndarray, n_records: int, key: jax.Array,
                 members: int = 5, steps: int = 300) -> np.ndarray:
    """Per-record mean information gain [R] of a ``valuation.causal_gain`` ensemble trained on all windows."""
    from valuation import causal_gain as cg

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn = jnp.asarray((x - mu) / sd)
    cfg = cg.EnsembleConfig(in_dim=x.shape[1], out_dim=y.shape[1], members=members, hidden=(64, 64),
                            batch_size=min(128, x.shape[0]))
    k_init, k_train = jax.random.split(key)
    ens, _ = cg.train(k_train, cg.init(k_init, cfg), xn, jnp.asarray(y), cfg, steps)
    ig = np.asarray(cg.information_gain(ens, xn, cfg), np.float64)
    return np.asarray([ig[owner == i].mean() for i in range(n_records)])


def read_realized(path: str) -> dict[str, float]:
    """{datapoint_id: realized ΔMPL} from a CSV with columns datapoint_id, realized_mpl (valuation's format)."""
    from valuation import csv_formats

    return dict(csv_formats.read_realized_csv(path))


#: valuation config (configs/<name>.yaml) of the reduced tasks: their parent task's
CONFIG_OF = {"point": "dishwashing", "dishwashing_reduced": "dishwashing"}


def export(records: Sequence[Record], net: IDMNet, variables, labels: dict, out_csv: str, key: jax.Array,
           settings=None, history: str | None = None, shared: bool = True, realized_csv: str | None = None,
           embeddings_out: str | None = None, log=print) -> dict:
    """Values every record and writes ``out_csv`` (seed columns) through the valuation engine.

    Args:
      records: the demonstrations (datapoints).
      net, variables: the trained IDM (its encoder embeds the video).
      labels: IDM labels {id: [T, A]}.
      out_csv: data_value.csv path.
      key: PRNG key (ensemble init/training).
      settings: ``valuation.settings.ValuationSettings`` (default: the task's config).
      history: CSV of past (novelty_score, causal_gain, realized_mpl_gain) for the value model.
      shared: sharing status of the demonstrations (True: shared; False: withheld, i.e. quoted).
      realized_csv: optional realized gains to true up against.
      embeddings_out: optional .npz of ids, embeddings, features for other tools.

    Returns:
      dict with ids, novelty, causal_gain, expected, lower, upper, kappa, tier, premium (arrays).
    """
    from valuation import csv_formats, pricing
    from valuation.quote import quote_batch
    from valuation.settings import load as load_settings

    settings = settings or load_settings(CONFIG_OF.get(records[0].task, records[0].task))
    ids = [r.id for r in records]
    x, y, owner, emb = window_features(net, variables, records, labels)
    novelty = novelty_scores(emb)
    gain = causal_gains(x, y, owner, len(records), key)
    history = history or _default_history()
    if not os.path.exists(history):
        raise FileNotFoundError(f"history {history!r}: not found; pass --history with columns novelty_score, "
                                f"causal_gain, realized_mpl_gain")
    hx, hy = csv_formats.read_history(history)
    batch = quote_batch(hx, hy, ids, np.stack([novelty, gain], -1), [shared] * len(ids), settings)
    quotes, pred = batch.quotes, batch.prediction
    if not batch.fitted:
        log(f"value model: history has {len(hy)} rows < min_samples_for_fit "
            f"{settings.data_valuation.min_samples_for_fit}; E[ΔMPL] = 0, κ = floor")
    trueups = []
    if realized_csv:
        realized = read_realized(realized_csv)
        trueups = [pricing.compute_trueup(q, realized[q.datapoint_id]) for q in quotes if q.datapoint_id in realized]
    os.makedirs(os.path.dirname(os.path.abspath(out_csv)), exist_ok=True)
    csv_formats.write_data_value_csv(out_csv, quotes, trueups)
    if embeddings_out:
        np.savez(embeddings_out, ids=np.asarray(ids), embeddings=emb, novelty=novelty, causal_gain=gain)
    return {"ids": ids, "novelty": novelty, "causal_gain": gain, "expected": pred.mean, "lower": pred.lower,
            "upper": pred.upper, "kappa": pred.kappa, "tier": np.asarray([q.tier for q in quotes]),
            "premium": np.asarray([q.premium for q in quotes]), "history": history}
