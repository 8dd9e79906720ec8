"""Shadow Twin what-if explorer: ``streamlit run app.py`` (pages live in ``explorer/``)."""

from explorer.main import main

main()
