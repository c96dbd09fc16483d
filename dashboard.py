"""xai-dashboard: explain and audit PyTorch models. Run with `streamlit run dashboard.py`."""

import logging

import streamlit as st

st.set_page_config(page_title="xai-dashboard", page_icon="🔎", layout="wide")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

PAGES = [
    st.Page("views/model_data.py", title="Model & data", icon="📦", default=True, url_path="model"),
    st.Page("views/image_explanations.py", title="Image explanations", icon="🖼️", url_path="images"),
    st.Page("views/feature_importance.py", title="Feature importance", icon="📊", url_path="features"),
    st.Page("views/surrogate_tree.py", title="Surrogate tree", icon="🌳", url_path="surrogate"),
    st.Page("views/quantization.py", title="Quantization", icon="🧮", url_path="quantization"),
]

st.navigation(PAGES).run()
