"""Run the dashboard in Streamlit's AppTest with a prepared session state."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

DASHBOARD = str(Path(__file__).resolve().parents[1] / "dashboard.py")


def run_app(timeout: float = 180, **state) -> AppTest:
    """The dashboard after one run, with `state` put into st.session_state first."""
    at = AppTest.from_file(DASHBOARD, default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def open_page(page: str, timeout: float = 300, **state) -> AppTest:
    """The dashboard run once with `state` in st.session_state (as the Model & data page leaves it), then `page`."""
    at = AppTest.from_file(DASHBOARD, default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page)
    return at.run()


def upload_state(model_bytes: bytes, name: str, sidecar: bytes | None = None, data=None, overrides=None) -> dict:
    """Session state as the Model & data page's upload widgets leave it."""
    return {
        "source": "upload",
        "model_upload": {"bytes": model_bytes, "name": name, "sidecar": sidecar, "overrides": overrides or {}},
        "data_upload": list(data or []),
    }


def error_messages(at: AppTest) -> list[str]:
    return [e.value for e in at.error]
