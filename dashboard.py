"""xai-dashboard: explain and audit PyTorch models. Run with `streamlit run dashboard.py`."""

import logging
import os

# Every browser session runs in its own thread of this process. With torch's default of one intra-op thread per core,
# concurrent calls on a small shared machine wait on each other (a BiLSTM forward: 1100 ms at 2 threads, 0.4 ms at 1,
# on 2 loaded cores). One thread per call unless OMP_NUM_THREADS says otherwise; set before torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

from ui.state import keep_uploads_across_reloads, serving  # noqa: E402

st.set_page_config(page_title="xai-dashboard", page_icon=":material/troubleshoot:", layout="wide")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

# Material icons ship with Streamlit's own font: they render on machines with no emoji font (headless Chromium).
PAGES = [
    st.Page("views/model_data.py", title="Model & data", icon=":material/inventory_2:", default=True, url_path="model"),
    st.Page("views/image_explanations.py", title="Image explanations", icon=":material/image_search:", url_path="images"),
    st.Page("views/feature_importance.py", title="Feature importance", icon=":material/bar_chart:", url_path="features"),
    st.Page("views/text_explanations.py", title="Text explanations", icon=":material/notes:", url_path="text"),
    st.Page("views/surrogate_tree.py", title="Surrogate tree", icon=":material/account_tree:", url_path="surrogate"),
    st.Page("views/quantization.py", title="Quantization", icon=":material/compress:", url_path="quantization"),
    st.Page("views/review.py", title="Review report", icon=":material/summarize:", url_path="review"),
]

with serving():  # the background warm-up imports between runs, not during them
    keep_uploads_across_reloads()
    st.navigation(PAGES).run()
