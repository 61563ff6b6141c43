"""Pages of the Streamlit app (UI only)."""
