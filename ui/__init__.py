"""Streamlit-side helpers shared by the pages: session state, caches, and the common look."""
