"""The Streamlit what-if explorer (``streamlit run app.py``): pages and their helpers.

The helpers (:mod:`explorer.catalog`, :mod:`explorer.whatif`, :mod:`explorer.graph`,
:mod:`explorer.charts`) know nothing of Streamlit, so the benchmark and the tests call the
very functions the pages call; :mod:`explorer.ui` holds what the pages share on screen.
"""
