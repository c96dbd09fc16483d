"""ExplainerDashboard on the breast-cancer MLP: the anchor of benchmarks/bench_startup.py's cold start.

Run by the benchmark with the interpreter of its own virtual environment (explainerdashboard is never a requirement of
this project): `python benchmarks/explainerdashboard_anchor.py PORT`. A scikit-learn MLP (standardised inputs, as the
demo's) trained on the demo's training rows, explained on its 143 held-out rows, served as ExplainerDashboard's default
dashboard; everything it computes before serving counts in the cold start, as it would for a user.
"""

from pathlib import Path

import pandas as pd
from explainerdashboard import ClassifierExplainer, ExplainerDashboard
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def main(port: int) -> None:
    train, test = pd.read_csv(ASSETS / "breast_cancer_train.csv"), pd.read_csv(ASSETS / "breast_cancer_test.csv")
    X, y = train.drop(columns="target"), train["target"]
    X_test, y_test = test.drop(columns="target"), test["target"]
    model = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=500, random_state=0)).fit(X, y)
    explainer = ClassifierExplainer(model, X_test, y_test, shap="kernel", labels=["malignant", "benign"])
    ExplainerDashboard(explainer, title="breast cancer MLP").run(port=port, host="127.0.0.1", use_waitress=False)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("port", type=int, help="the port to serve the dashboard on")
    main(parser.parse_args().port)
