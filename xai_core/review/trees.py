"""A fitted surrogate tree stored as plain arrays and JSON (no pickle), and rebuilt as the same scikit-learn tree."""

from __future__ import annotations

import numpy as np
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from xai_core.surrogate import SurrogateSettings, SurrogateTree


def surrogate_to_stored(result: SurrogateTree) -> tuple[dict, dict[str, np.ndarray]]:
    """(facts for JSON, arrays for npz) holding everything `surrogate_from_stored` needs."""
    tree = result.tree
    state = tree.tree_.__getstate__()
    facts = {
        "task": result.task, "feature_names": result.feature_names, "class_names": result.class_names,
        "settings": result.settings.__dict__, "n_synthetic": result.n_synthetic, "fidelity": result.fidelity,
        "fidelity_interval": list(result.fidelity_interval), "fidelity_name": result.fidelity_name,
        "model_score": result.model_score, "tree_score": result.tree_score, "score_name": result.score_name,
        "notes": result.notes, "rules": result.rules, "n_leaves": int(tree.get_n_leaves()),
        "tree_params": tree.get_params(), "max_depth": int(state["max_depth"]), "node_count": int(state["node_count"]),
        "n_features": int(tree.n_features_in_), "n_outputs": int(tree.n_outputs_),
        "n_classes": np.atleast_1d(tree.tree_.n_classes).astype(int).tolist(),
    }
    arrays = {"nodes": state["nodes"], "values": state["values"], "fit_index": result.fit_index,
              "holdout_index": result.holdout_index}
    if hasattr(tree, "classes_"):
        arrays["classes"] = np.asarray(tree.classes_)
    return facts, arrays


def surrogate_from_stored(facts: dict, arrays: dict[str, np.ndarray]) -> SurrogateTree:
    """The `SurrogateTree` that `surrogate_to_stored` saved: same predictions, paths and rules."""
    classification = facts["task"] == "classification"
    estimator = (DecisionTreeClassifier if classification else DecisionTreeRegressor)(**facts["tree_params"])
    inner = Tree(facts["n_features"], np.asarray(facts["n_classes"], dtype=np.intp), facts["n_outputs"])
    inner.__setstate__({"max_depth": facts["max_depth"], "node_count": facts["node_count"], "nodes": arrays["nodes"],
                        "values": arrays["values"]})
    estimator.tree_ = inner
    estimator.n_features_in_ = facts["n_features"]
    estimator.n_outputs_ = facts["n_outputs"]
    estimator.max_features_ = facts["n_features"]
    if classification:
        estimator.classes_ = arrays["classes"]
        estimator.n_classes_ = int(facts["n_classes"][0])
    return SurrogateTree(
        tree=estimator, task=facts["task"], feature_names=facts["feature_names"], class_names=facts["class_names"],
        settings=SurrogateSettings(**facts["settings"]), fit_index=arrays["fit_index"],
        holdout_index=arrays["holdout_index"], n_synthetic=facts["n_synthetic"], fidelity=facts["fidelity"],
        fidelity_interval=tuple(facts["fidelity_interval"]), fidelity_name=facts["fidelity_name"],
        model_score=facts["model_score"], tree_score=facts["tree_score"], score_name=facts["score_name"],
        notes=list(facts["notes"]))
