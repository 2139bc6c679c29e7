"""scikit-learn's random forest classifier, grown without its per-tree Python overhead.

The ITH model's search fits about 250 forests (25 trials x 10 folds) of up to 300 trees
each on 30-odd patients. For data that small, scikit-learn spends ~2.5 ms a tree in
Python (cloning the estimator, ``get_params`` through ``inspect``, target checks,
joblib dispatch) around ~0.05 ms of tree building. ``forest_proba`` calls the same
Cython builder (``sklearn.tree._tree``) with the same seeds, bootstrap draws, splitter
and stopping rules as ``RandomForestClassifier.fit`` and sums the trees' probabilities in
the same order as its ``predict_proba``: the result is bit-identical (tests/test_models.py
compares it with the library over a grid of data and hyper-parameters). It uses private
scikit-learn modules, so the version is pinned in pyproject.toml and the equality test
fails loudly on an upgrade that changes them.

Only the search uses it. The refitted model that is saved, explained by SHAP and used
on validation patients is scikit-learn's own ``RandomForestClassifier``.
"""

from __future__ import annotations

import numbers

import numpy as np

MAX_INT = np.iinfo(np.int32).max
# RandomForestClassifier's hyper-parameters this path reproduces; anything else is refused.
SUPPORTED = frozenset({"n_estimators", "max_depth", "min_samples_leaf", "max_features"})


def _max_features(value, n_features: int) -> int:
    """The number of features tried per split, resolved as DecisionTreeClassifier does."""
    if value is None:
        return n_features
    if isinstance(value, str):
        if value == "sqrt":
            return max(1, int(np.sqrt(n_features)))
        if value == "log2":
            return max(1, int(np.log2(n_features)))
        raise ValueError(f"max_features {value!r} is not supported")
    if isinstance(value, numbers.Integral):
        return int(value)
    return max(1, int(value * n_features)) if value > 0.0 else 0


def forest_proba(params: dict, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                 seed: int) -> np.ndarray:
    """Class probabilities of ``RandomForestClassifier(random_state=seed, **params)``
    fitted on (X_train, y_train), for X_test: shape (n_test, n_classes), bit-identical."""
    from sklearn.tree._criterion import Gini
    from sklearn.tree._splitter import BestSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree

    unknown = set(params) - SUPPORTED
    if unknown:
        raise ValueError(f"forest_proba reproduces {sorted(SUPPORTED)} only, not {sorted(unknown)}")
    n_estimators = int(params.get("n_estimators", 100))
    max_depth = params.get("max_depth")
    max_depth = MAX_INT if max_depth is None else int(max_depth)
    min_samples_leaf = int(params.get("min_samples_leaf", 1))
    min_samples_split = max(2, 2 * min_samples_leaf)

    # The forest converts X to float32 and encodes y as class indices (float64, one column).
    x = np.asarray(X_train, dtype=np.float32)
    x_test = np.asarray(X_test, dtype=np.float32)
    classes, encoded = np.unique(np.asarray(y_train), return_inverse=True)
    y = np.ascontiguousarray(encoded.reshape(-1, 1), dtype=np.float64)
    n_samples, n_features = x.shape
    n_classes = np.array([len(classes)], dtype=np.intp)
    max_features = _max_features(params.get("max_features", "sqrt"), n_features)

    forest_rng = np.random.RandomState(seed)
    # scikit-learn makes two RandomState(tree_seed) per tree; reseeding one object gives
    # the same streams at a twentieth of the cost of constructing it.
    tree_rng = np.random.RandomState(0)
    out = np.zeros((len(x_test), len(classes)), dtype=np.float64)
    for _ in range(n_estimators):
        tree_seed = forest_rng.randint(MAX_INT)  # _set_random_states: one draw per tree
        # Bootstrap as counts passed as sample weights (_parallel_build_trees).
        tree_rng.seed(tree_seed)
        draws = tree_rng.randint(0, n_samples, n_samples).astype(np.int32)
        weight = np.bincount(draws, minlength=n_samples).astype(np.float64)
        tree_rng.seed(tree_seed)  # the splitter draws its own seed from a fresh stream
        splitter = BestSplitter(Gini(1, n_classes), max_features, min_samples_leaf, 0.0, tree_rng, None)
        tree = Tree(n_features, n_classes, 1)
        DepthFirstTreeBuilder(splitter, min_samples_split, min_samples_leaf, 0.0, max_depth,
                              0.0).build(tree, x, y, weight, None)
        out += tree.predict(x_test)[:, : len(classes)]
    out /= n_estimators
    return out
