"""FeatureLens — Streamlit entry point: navigation and the shared sidebar (model, device).

Run with ``streamlit run app.py``. Works offline on CPU with the default model.
"""

from pathlib import Path

import streamlit as st

from pages._ui.shell import open_link_notices, shared_sidebar

# A file, served by this server: a Material-icon favicon would be fetched from fonts.gstatic.com.
FAVICON = Path(__file__).parent / "pages" / "_ui" / "static" / "favicon.png"
st.set_page_config(page_title="FeatureLens", page_icon=str(FAVICON), layout="wide")

PAGES = {
    "FeatureLens": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    ],
    "Scenarios": [
        st.Page("pages/model_layers.py", title="Model & layers", icon=":material/layers:"),
        st.Page("pages/layer_hierarchy.py", title="Layer hierarchy", icon=":material/stacks:"),
        st.Page("pages/compare_images.py", title="Compare images", icon=":material/compare:"),
        st.Page("pages/domain_shift.py", title="Domain shift", icon=":material/image_search:"),
        st.Page("pages/model_comparison.py", title="Model comparison", icon=":material/difference:"),
        st.Page("pages/invariance.py", title="Rotation & scale invariance", icon=":material/rotate_right:"),
        st.Page("pages/few_shot.py", title="Few-shot segmentation", icon=":material/format_paint:"),
        st.Page("pages/feature_visualization.py", title="Feature visualization", icon=":material/auto_awesome:"),
        st.Page("pages/chest_xray.py", title="Chest X-ray", icon=":material/radiology:"),
    ],
    "Data": [
        st.Page("pages/feature_caches.py", title="Feature caches", icon=":material/database:"),
    ],
}

# Streamlit's main column starts 6rem down; 2.5rem leaves room for the header and brings the views
# above the fold on a 1280×720 projector. A search page's results (a container keyed "results_…", next
# to the fixed-width query canvas) wrap under the canvas rather than shrink below 20rem. A shared link's
# notices (shell.link_notice) can come first on the page: they start below the header, as a title does.
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 2.5rem; }"
        ".st-key-fl_link_notices { padding-top: 1.25rem; }"
        "[data-testid='stLayoutWrapper']:has(> [class*='st-key-results_']) { min-width: 20rem; }</style>")
page = st.navigation(PAGES)  # first: registers the pages before anything slow runs
open_link_notices()
shared_sidebar()
page.run()
