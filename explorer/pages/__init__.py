"""The explorer's pages: each file is run as a script by ``st.navigation`` (see main.py)."""
