"""Streamlit glue shared by every page, split by job: ``shell`` (navigation hand-over, sidebar,
current model), ``resources`` (shared cached objects), ``widgets``, ``urlstate`` and ``charts``.
No computation here: that lives in ``featurelens``."""
